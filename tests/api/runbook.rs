//! The runbook cannot drift: every ```sql block of `docs/operations.md` runs against the test
//! stack's schema (in a transaction rolled back, placeholders such as `'<org>'` replaced by an
//! id), and the debugging queries the runbook promises are there, each under its title.

use crate::helpers::psql;

const RUNBOOK: &str = include_str!("../../docs/operations.md");

/// The debugging queries the runbook must hold, each as a `-- <title>` line of a SQL block.
const QUERIES: &[&str] = &[
    "recent webhooks",
    "AI requests of a contact",
    "failed tool executions",
    "open messaging windows",
    "the dead letter queue",
    "rate limits of a contact",
    "system health summary",
    "top errors of the last 24 hours",
    "table sizes",
    "slow queries",
];

/// The text of every fenced ```sql block of `markdown` (list indentation kept; SQL ignores it).
fn sql_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        let fence = line.trim_start();
        match current.as_mut() {
            None if fence == "```sql" => current = Some(String::new()),
            Some(_) if fence == "```" => blocks.extend(current.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// `sql` with every quoted placeholder (`'<org>'`, `'<series id>'` …) replaced by a UUID, which
/// compares with both uuid and text columns.
fn with_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(start) = rest.find("'<") {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        match tail.find(">'") {
            Some(end) => {
                out.push_str("'00000000-0000-0000-0000-000000000000'");
                rest = &tail[end + 2..];
            }
            None => {
                out.push_str(tail);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn placeholders_become_ids() {
    assert_eq!(
        with_placeholders("where org_id = '<org>' and id = '<series id>' and x = 'a'"),
        "where org_id = '00000000-0000-0000-0000-000000000000' and id = \
         '00000000-0000-0000-0000-000000000000' and x = 'a'"
    );
}

#[test]
fn the_runbook_holds_every_debugging_query() {
    let blocks = sql_blocks(RUNBOOK);
    let titles: Vec<&str> = blocks
        .iter()
        .flat_map(|block| block.lines())
        .filter_map(|line| line.trim().strip_prefix("-- "))
        .collect();
    for query in QUERIES {
        assert!(
            titles.iter().any(|title| title.starts_with(query)),
            "docs/operations.md has no SQL block line `-- {query}`"
        );
    }
}

#[tokio::test]
async fn every_sql_block_of_the_runbook_runs() {
    let blocks = sql_blocks(RUNBOOK);
    assert!(blocks.len() >= 5, "found {} SQL blocks", blocks.len());
    for block in blocks {
        let sql = with_placeholders(&block);
        // One query string: the rollback undoes whatever a procedure's block changes.
        psql(&format!("begin;\n{sql}\n;\nrollback;")).await;
    }
}
