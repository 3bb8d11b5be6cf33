//! Everything the two databases do differently, in one place.
//!
//! Every other statement of the store is one text for both: `$N`
//! placeholders (SQLite reads `$N` as parameter N too), flags compared bare
//! (`WHERE enabled`: a BOOLEAN in Postgres, a 0/1 INTEGER in SQLite), and
//! lists as `IN ($a, …)` built by [`in_list`] (sqlx's `Any` has no arrays).

/// The database behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// One file, one writer at a time.
    Sqlite,
    /// Several replicas claiming from one database.
    Postgres,
}

impl Dialect {
    /// The dialect a `LEADBRIDGE_DATABASE_URL` names, if any.
    pub fn of_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Dialect::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Dialect::Postgres)
        } else {
            None
        }
    }

    /// Leases up to `$6` due clients of connection `$3` with urgency `$4` to
    /// owner `$1` until `$2`, at time `$5`, oldest due first; returns
    /// `connection_id, client_id`.
    ///
    /// SQLite has one writer, so the statement alone is the lock. Postgres
    /// replicas claim at once: `SKIP LOCKED` passes over rows another replica
    /// is claiming, and the lease check is re-evaluated on the locked row, so
    /// a row just leased elsewhere is not taken.
    pub fn claim_due_sql(self) -> &'static str {
        match self {
            Dialect::Sqlite => {
                "UPDATE clients SET lease_owner = $1, lease_until = $2
                 WHERE rowid IN (
                   SELECT rowid FROM clients
                   WHERE connection_id = $3 AND urgent = $4
                     AND next_attempt_at IS NOT NULL AND next_attempt_at <= $5
                     AND (lease_until IS NULL OR lease_until <= $5)
                   ORDER BY next_attempt_at
                   LIMIT $6)
                 RETURNING connection_id, client_id"
            }
            Dialect::Postgres => {
                "UPDATE clients c SET lease_owner = $1, lease_until = $2
                 FROM (
                   SELECT d.connection_id, d.client_id FROM clients d
                   WHERE d.connection_id = $3 AND d.urgent = $4
                     AND d.next_attempt_at IS NOT NULL AND d.next_attempt_at <= $5
                     AND (d.lease_until IS NULL OR d.lease_until <= $5)
                   ORDER BY d.next_attempt_at
                   LIMIT $6
                   FOR UPDATE SKIP LOCKED
                 ) due
                 WHERE c.connection_id = due.connection_id AND c.client_id = due.client_id
                 RETURNING c.connection_id, c.client_id"
            }
        }
    }

    /// `sql` with its `$1, $2, …` as SQLite's anonymous `?` when the
    /// statement uses each once, in order (else unchanged). SQLite finds a
    /// named parameter by a linear scan, both when it parses one and when it
    /// binds one, so a statement of hundreds of `$N` costs quadratic time
    /// (measured: 6 % of ingest CPU in `strncmp` and
    /// `sqlite3_bind_parameter_name`); anonymous ones cost nothing.
    pub fn positional(self, sql: String) -> String {
        if self == Dialect::Postgres {
            return sql;
        }
        let mut out = String::with_capacity(sql.len());
        let mut expected = 1usize;
        let mut rest = sql.as_str();
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let digits = rest[at + 1..]
                .bytes()
                .take_while(u8::is_ascii_digit)
                .count();
            if rest[at + 1..at + 1 + digits].parse() != Ok(expected) {
                debug_assert!(false, "parameters out of order in {sql}");
                return sql;
            }
            out.push('?');
            expected += 1;
            rest = &rest[at + 1 + digits..];
        }
        out.push_str(rest);
        out
    }

    /// A text column compared byte by byte, so client ids page in the same
    /// order on both (SQLite's default; Postgres would use the locale's).
    pub fn bytewise(self, column: &str) -> String {
        match self {
            Dialect::Sqlite => column.to_string(),
            Dialect::Postgres => format!("{column} COLLATE \"C\""),
        }
    }
}

/// `($first, $first+1, …)` for `n` values: the placeholders of an `IN` list.
pub fn in_list(first: usize, n: usize) -> String {
    let marks: Vec<String> = (first..first + n).map(|i| format!("${i}")).collect();
    format!("({})", marks.join(", "))
}

/// `($1, …, $cols), ($cols+1, …)` for `rows` rows: the tuples of a
/// multi-row `VALUES`. (sqlx's `QueryBuilder` writes `?` for `Any`, which
/// Postgres does not read.)
pub fn values(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| in_list(r * cols + 1, cols))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Values per `IN` list: far below SQLite's 32,766 parameters and
/// Postgres's 65,535.
pub const IN_CHUNK: usize = 500;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_lists_number_every_value_once() {
        assert_eq!(in_list(3, 2), "($3, $4)");
        assert_eq!(values(2, 3), "($1, $2, $3), ($4, $5, $6)");
    }

    #[test]
    fn sqlite_statements_with_parameters_in_order_become_anonymous() {
        let sql = format!("UPDATE t SET a = $1 WHERE b IN {}", in_list(2, 3));
        assert_eq!(
            Dialect::Sqlite.positional(sql.clone()),
            "UPDATE t SET a = ? WHERE b IN (?, ?, ?)"
        );
        assert_eq!(Dialect::Postgres.positional(sql.clone()), sql);
        assert_eq!(
            Dialect::Sqlite.positional(format!("VALUES {}", values(2, 2))),
            "VALUES (?, ?), (?, ?)"
        );
    }

    #[test]
    #[cfg(not(debug_assertions))]
    fn a_reused_parameter_keeps_its_number() {
        let sql = "SELECT $1, $1".to_string();
        assert_eq!(Dialect::Sqlite.positional(sql.clone()), sql);
    }

    #[test]
    fn urls_name_their_dialect() {
        assert_eq!(Dialect::of_url("sqlite://x.db"), Some(Dialect::Sqlite));
        assert_eq!(
            Dialect::of_url("postgresql://h/db"),
            Some(Dialect::Postgres)
        );
        assert_eq!(Dialect::of_url("mysql://h/db"), None);
    }
}
