//! SOQL reads: where a merged Lead went, and the Lead a lost create made.

use reqwest::Method;
use serde::Deserialize;

use super::errors::{self, Failure, Op};
use super::{is_record_id, urlencode, Credentials, Salesforce};

impl Salesforce {
    /// The Lead that `id` was merged into, if it was merged away; None when it
    /// was deleted (or is gone from the recycle bin). `queryAll` sees deleted
    /// records, which `query` does not. One API call.
    pub async fn merged_into(&self, c: &Credentials, id: &str) -> Result<Option<String>, Failure> {
        // Ids are 15 or 18 letters and digits: nothing else reaches the SOQL.
        if !is_record_id(id) {
            return Ok(None);
        }
        let soql = format!("SELECT Id, IsDeleted, MasterRecordId FROM Lead WHERE Id = '{id}'");
        #[derive(Deserialize)]
        struct Row {
            #[serde(rename = "IsDeleted")]
            is_deleted: bool,
            #[serde(rename = "MasterRecordId")]
            master_record_id: Option<String>,
        }
        let rows: Vec<Row> = self.query(c, "queryAll", &soql).await?;
        Ok(rows
            .into_iter()
            .find(|r| r.is_deleted)
            .and_then(|r| r.master_record_id)
            .filter(|id| is_record_id(id)))
    }

    /// The Leads this connection's user created at or after `since` whose
    /// fields equal `matching` (`None`: the field is empty), oldest first.
    /// SOQL compares text without regard to case. One API call.
    pub async fn created_since(
        &self,
        c: &Credentials,
        since: chrono::DateTime<chrono::Utc>,
        matching: &[(&str, Option<&str>)],
    ) -> Result<Vec<String>, Failure> {
        let mut soql = String::from("SELECT Id FROM Lead WHERE ");
        if let Some(user) = self.token(c).await?.user_id.as_deref() {
            soql.push_str(&format!("CreatedById = '{user}' AND "));
        }
        soql.push_str(&format!(
            "CreatedDate >= {}",
            since.format("%Y-%m-%dT%H:%M:%SZ")
        ));
        for (field, value) in matching {
            match value {
                Some(v) => soql.push_str(&format!(" AND {field} = '{}'", soql_escape(v))),
                None => soql.push_str(&format!(" AND {field} = null")),
            }
        }
        soql.push_str(" ORDER BY CreatedDate");
        #[derive(Deserialize)]
        struct Row {
            #[serde(rename = "Id")]
            id: String,
        }
        let rows: Vec<Row> = self.query(c, "query", &soql).await?;
        // Only real record ids: they are stored and put in URL paths.
        Ok(rows
            .into_iter()
            .map(|r| r.id)
            .filter(|id| is_record_id(id))
            .collect())
    }

    /// `GET {resource}/?q=…` (`query` or `queryAll`): the answer's records.
    async fn query<T: serde::de::DeserializeOwned>(
        &self,
        c: &Credentials,
        resource: &str,
        soql: &str,
    ) -> Result<Vec<T>, Failure> {
        let path = format!("{resource}/?q={}", urlencode(soql));
        let (_, bytes) = self
            .send(c, Op::Query, Method::GET, &path, None, None)
            .await?;
        #[derive(Deserialize)]
        struct Answer<T> {
            records: Vec<T>,
        }
        let answer: Answer<T> = serde_json::from_slice(&bytes).map_err(|e| {
            Failure::transient(
                errors::codes::BAD_QUERY_ANSWER,
                format!("unreadable query answer: {e}"),
            )
        })?;
        Ok(answer.records)
    }
}

/// A SOQL string literal's content, with the escapes SOQL documents.
fn soql_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn soql_text_is_escaped_as_soql_documents() {
        assert_eq!(super::soql_escape("O'Brien"), "O\\'Brien");
        assert_eq!(super::soql_escape("a\\b\"c\nd\te"), "a\\\\b\\\"c\\nd\\te");
        // What cannot end the literal passes as it is.
        assert_eq!(super::soql_escape("x' OR Name != '"), "x\\' OR Name != \\'");
        assert!(crate::salesforce::is_record_id("005xx000001Sv6AAAE"));
        assert!(!crate::salesforce::is_record_id("005' OR Id != '"));
    }
}
