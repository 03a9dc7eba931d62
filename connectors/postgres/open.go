package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// connect opens the connection and checks (or creates) the table; on any failure the sink is
// left without a connection.
func (s *Sink) connect(ctx context.Context) error {
	if s.conn != nil {
		_ = s.conn.Close(ctx)
		s.conn = nil
	}
	pc, err := pgx.ParseConfig(s.cfg.DSN)
	if err != nil {
		return permanentf("postgres sink: dsn: %v", parseError(err))
	}
	pc.ConnectTimeout = s.cfg.ConnectTimeout
	if _, ok := pc.RuntimeParams["application_name"]; !ok {
		pc.RuntimeParams["application_name"] = "sluice"
	}
	conn, err := pgx.ConnectConfig(ctx, pc)
	if err != nil {
		werr := fmt.Errorf("postgres sink: connect: %w", err)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && (isPermanent(err) || strings.HasPrefix(pe.Code, "28")) {
			return &permanentError{werr}
		}
		return werr
	}
	s.conn = conn
	if err := s.setup(ctx); err != nil {
		_ = conn.Close(ctx)
		s.conn = nil
		var pe *permanentError
		if errors.As(err, &pe) {
			return err
		}
		if isPermanent(err) {
			return &permanentError{fmt.Errorf("postgres sink: table %s: %w", s.cfg.table, err)}
		}
		return fmt.Errorf("postgres sink: table %s: %w", s.cfg.table, err)
	}
	return nil
}

// parseError is pgx's DSN error without the connection string it quotes (redacted at best
// effort, but the whole string is a secret here).
func parseError(err error) error {
	msg := err.Error()
	i, j := strings.Index(msg, "`"), strings.LastIndex(msg, "`: ")
	if i >= 0 && j > i {
		msg = msg[:i] + "it" + msg[j+1:]
	}
	return errors.New(msg)
}

// tableInfo is what the sink learns of its table on open.
type tableInfo struct {
	oid     uint32
	name    string // schema.name as the catalog has it
	columns map[string]columnInfo
	order   []string
}

type columnInfo struct {
	base      uint32 // the type's OID, or a domain's base type
	typ       string // as format_type prints it
	notNull   bool
	defaulted bool // has a default, or is an identity column
	generated bool
}

// setup runs the checks of Open on a fresh connection: a writable server, the table (created
// when missing with create_table), its columns and types, the grants, the conflict target of
// upsert, and the staging table.
func (s *Sink) setup(ctx context.Context) error {
	var readOnly string
	var recovery bool
	if err := s.conn.QueryRow(ctx, "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')").Scan(&recovery, &readOnly); err != nil {
		return err
	}
	if recovery || readOnly == "on" {
		why := "default_transaction_read_only is on"
		if recovery {
			why = "the server is a standby in recovery"
		}
		return permanentf("postgres sink: cannot write to %s: the connection is read-only (%s); point dsn at the primary", s.cfg.table, why)
	}
	if s.cfg.CreateTable {
		if err := s.createTable(ctx); err != nil {
			return err
		}
	}
	info, err := s.describe(ctx)
	if err != nil {
		return err
	}
	return s.useTable(ctx, info)
}

// useTable checks the table described by info against the columns and prepares the writes:
// with evolve, the table's undeclared columns join the configured ones.
func (s *Sink) useTable(ctx context.Context, info *tableInfo) error {
	s.useColumns(info)
	if err := s.checkColumns(info); err != nil {
		return err
	}
	if err := s.checkGrants(ctx, info); err != nil {
		return err
	}
	if s.cfg.Mode == modeUpsert {
		if err := s.checkConflictTarget(ctx, info); err != nil {
			return err
		}
		s.valueOIDs = append(s.valueOIDs[:0], pgtype.Int8OID)
		for _, c := range s.cfg.cols {
			s.valueOIDs = append(s.valueOIDs, info.columns[c.name].base)
		}
		if _, err := s.conn.Exec(ctx, "DROP TABLE IF EXISTS "+stageTable); err != nil {
			return err
		}
		if _, err := s.conn.Exec(ctx, s.sql.stage); err != nil {
			return fmt.Errorf("create the staging table of upsert: %w", err)
		}
	}
	return nil
}

// createTable creates the table and its schema when missing.
func (s *Sink) createTable(ctx context.Context) error {
	if s.cfg.table.Schema != "" {
		var exists bool
		if err := s.conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", s.cfg.table.Schema).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			if _, err := s.conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+quote(s.cfg.table.Schema)); err != nil {
				return fmt.Errorf("create schema %s: %w", s.cfg.table.Schema, err)
			}
		}
	}
	var exists bool
	if err := s.conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", s.sql.table).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	if _, err := s.conn.Exec(ctx, s.createDDL()); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && (pe.Code == "42P07" || pe.Code == "23505") {
			return nil // created meanwhile by another process
		}
		return fmt.Errorf("create table %s: %w", s.cfg.table, err)
	}
	s.log.Info("created table", "table", s.cfg.table.String())
	return nil
}

// createDDL is the CREATE TABLE statement of create_table.
func (s *Sink) createDDL() string {
	if s.cfg.Layout == layoutDeadLetter {
		return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (\n\t%s\n)", s.sql.table, deadLetterDDL)
	}
	var defs, keys []string
	for _, c := range s.cfg.cols {
		defs = append(defs, quote(c.name)+" "+c.typ.String())
		if c.key {
			keys = append(keys, quote(c.name))
		}
	}
	if len(keys) > 0 {
		defs = append(defs, "PRIMARY KEY ("+strings.Join(keys, ", ")+")")
	}
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (\n\t%s\n)", s.sql.table, strings.Join(defs, ",\n\t"))
}

// describe reads the table's columns, or says that it is missing.
func (s *Sink) describe(ctx context.Context) (*tableInfo, error) {
	info := &tableInfo{columns: map[string]columnInfo{}}
	var kind string
	var oid *uint32
	if err := s.conn.QueryRow(ctx, "SELECT to_regclass($1)::oid", s.sql.table).Scan(&oid); err != nil {
		return nil, err
	}
	if oid == nil {
		hint := "create it, or set create_table: true"
		if s.cfg.table.Schema == "" {
			hint += " (an unqualified name is looked up through search_path)"
		}
		return nil, permanentf("postgres sink: table %s does not exist; %s", s.cfg.table, hint)
	}
	info.oid = *oid
	err := s.conn.QueryRow(ctx, "SELECT c.relkind::text, n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
		info.oid).Scan(&kind, &info.name)
	if err != nil {
		return nil, err
	}
	if kind != "r" && kind != "p" && kind != "f" {
		return nil, permanentf("postgres sink: %s is not a table (relkind %s); COPY writes into tables only", info.name, kind)
	}
	rows, err := s.conn.Query(ctx, `SELECT a.attname::text, coalesce(nullif(t.typbasetype, 0), t.oid), format_type(a.atttypid, a.atttypmod),
		a.attnotnull, a.atthasdef OR a.attidentity <> '', a.attgenerated <> ''
		FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
		WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, info.oid)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var c columnInfo
		if err := rows.Scan(&name, &c.base, &c.typ, &c.notNull, &c.defaulted, &c.generated); err != nil {
			return nil, err
		}
		info.columns[name] = c
		info.order = append(info.order, name)
	}
	return info, rows.Err()
}

// checkColumns compares the configured columns with the table's.
func (s *Sink) checkColumns(info *tableInfo) error {
	configured := map[string]bool{}
	for _, c := range s.cfg.cols {
		configured[c.name] = true
		tc, ok := info.columns[c.name]
		switch {
		case !ok:
			return permanentf("postgres sink: table %s has no column %q (it has %s); add it or remove it from columns", info.name, c.name, strings.Join(info.order, ", "))
		case tc.generated:
			return permanentf("postgres sink: column %q of %s is generated and cannot be written; remove it from columns", c.name, info.name)
		case !c.typ.compatible(tc.base):
			return permanentf("postgres sink: column %q of %s is %s, but the configuration declares %s; declare the table's type", c.name, info.name, tc.typ, c.typ)
		}
	}
	var missing []string
	for _, name := range info.order {
		tc := info.columns[name]
		if !configured[name] && tc.notNull && !tc.defaulted {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return permanentf("postgres sink: table %s has NOT NULL column(s) %s without a default that the configuration does not fill; add them to columns", info.name, strings.Join(missing, ", "))
	}
	return nil
}

// checkGrants checks that the role may insert (and for upsert, update).
func (s *Sink) checkGrants(ctx context.Context, info *tableInfo) error {
	var insert, update bool
	var role string
	err := s.conn.QueryRow(ctx, "SELECT has_table_privilege($1::oid, 'INSERT'), has_table_privilege($1::oid, 'UPDATE'), current_user::text", info.oid).Scan(&insert, &update, &role)
	if err != nil {
		return err
	}
	if !insert {
		return permanentf("postgres sink: role %s may not insert into %s; GRANT INSERT ON %s TO %s", role, info.name, s.sql.table, quote(role))
	}
	if s.cfg.Mode == modeUpsert && !update {
		return permanentf("postgres sink: role %s may not update %s, which upsert needs; GRANT UPDATE ON %s TO %s", role, info.name, s.sql.table, quote(role))
	}
	return nil
}

// checkConflictTarget checks that a unique index (or primary key) covers exactly the key
// columns, as ON CONFLICT (key) requires.
func (s *Sink) checkConflictTarget(ctx context.Context, info *tableInfo) error {
	keys := slices.Clone(s.cfg.Key)
	sort.Strings(keys)
	var ok bool
	err := s.conn.QueryRow(ctx, `SELECT EXISTS (
		SELECT 1 FROM pg_index i
		WHERE i.indrelid = $1 AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indnkeyatts = $3
		AND (SELECT array_agg(a.attname::text ORDER BY a.attname::text)
			FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
			JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
			WHERE k.ord <= i.indnkeyatts) = $2::text[])`, info.oid, keys, len(keys)).Scan(&ok)
	if err != nil {
		return err
	}
	if !ok {
		return permanentf("postgres sink: upsert needs a primary key or unique index on exactly (%s) in %s, and there is none; create one, or set key to the columns of an existing one",
			strings.Join(s.cfg.Key, ", "), info.name)
	}
	return nil
}
