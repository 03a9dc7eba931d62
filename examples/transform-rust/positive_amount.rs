//! positive_amount: rejects records whose "amount" is missing or not a number greater than 0.
use sluice::{json, Record, Reject};

sluice::validator!(
    r#"{"name":"positive_amount","version":"0.1.0","abi":"1.0","kinds":["validate"]}"#,
    |rec: &Record| -> Result<(), Reject> {
        match json::find(rec.value, "amount") {
            Err(()) => Err(Reject::invalid("not a JSON object")),
            Ok(None) => Err(Reject::schema("amount: missing")),
            Ok(Some(v)) if v.kind == json::Kind::Number && v.number() > 0.0 => Ok(()),
            Ok(Some(_)) => Err(Reject::range("amount: must be a number greater than 0")),
        }
    }
);
