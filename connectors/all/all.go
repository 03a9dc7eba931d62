// Package all links every built-in connector into the binary. Import it for its side effects.
package all

import (
	_ "github.com/sluicehq/sluice/connectors/drop"
	_ "github.com/sluicehq/sluice/connectors/file"
	_ "github.com/sluicehq/sluice/connectors/generate"
	_ "github.com/sluicehq/sluice/connectors/stdout"
)
