//! The migrations hold every SQL function, view and policy in its current form, and every table
//! created whole, so that the migration holding a definition is the one the database runs.
//! After the first release a released migration never changes: a function, view or policy is
//! changed by a new migration holding its whole new body (`create or replace`), a table by
//! `alter table` in a new migration (docs/database.md). `supabase/RELEASED` lists the released
//! migrations with their sha256; the rule, checked here (no database needed: the files are
//! read as text):
//!   * the released migrations are the first ones, in order, and unchanged;
//!   * a function, view or policy is defined at most once per file and at most once among the
//!     unreleased migrations: a second definition is allowed only in a migration after the
//!     release holding the previous one, and the last file defining it holds its current body;
//!   * no `alter table ... add column` of a table created in an unreleased migration: the
//!     column belongs in its `create table` (`add constraint` is allowed).

use std::collections::BTreeMap;
use std::path::Path;

/// The words of a migration, lowercased, with their line numbers: `--` and `/* */` comments
/// skipped (prose that mentions a function is not a definition), `(` a word of its own.
fn tokens(text: &str) -> Vec<(String, usize)> {
    let mut tokens: Vec<(String, usize)> = Vec::new();
    let mut in_block_comment = false;
    for (index, line) in text.lines().enumerate() {
        let mut code = String::new();
        let mut rest = line;
        loop {
            if in_block_comment {
                match rest.find("*/") {
                    Some(end) => {
                        in_block_comment = false;
                        rest = &rest[end + 2..];
                    }
                    None => break,
                }
            } else {
                let line_comment = rest.find("--");
                let block_comment = rest.find("/*");
                let block_first = block_comment.is_some_and(|b| line_comment.is_none_or(|l| b < l));
                if let (true, Some(b)) = (block_first, block_comment) {
                    code.push_str(&rest[..b]);
                    code.push(' ');
                    in_block_comment = true;
                    rest = &rest[b + 2..];
                } else if let Some(l) = line_comment {
                    code.push_str(&rest[..l]);
                    break;
                } else {
                    code.push_str(rest);
                    break;
                }
            }
        }
        // `name(args` and `name (args` name the same thing.
        let code = code.to_lowercase().replace('(', " ( ");
        tokens.extend(code.split_whitespace().map(|t| (t.to_string(), index + 1)));
    }
    tokens
}

/// `kind name -> ["file:line", ...]` for every `create [or replace] function <name>`,
/// `create [or replace] view <name>` and `create policy <name> on <table>` (keyed by table and
/// name) in `files`. Case-insensitive, any whitespace (line breaks too); `--` and `/* */`
/// comments are skipped, so prose that mentions a function is not a definition.
fn definitions(files: &[(String, String)]) -> BTreeMap<String, Vec<String>> {
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (file, text) in files {
        let tokens = tokens(text);
        let word = |i: usize| tokens.get(i).map_or("", |(t, _)| t.as_str());
        for (i, (first, line)) in tokens.iter().enumerate() {
            if first != "create" {
                continue;
            }
            let mut j = i + 1;
            if word(j) == "or" && word(j + 1) == "replace" {
                j += 2;
            }
            while matches!(word(j), "temp" | "temporary" | "recursive" | "materialized") {
                j += 1;
            }
            let key = match word(j) {
                "function" | "procedure" => format!("function {}", word(j + 1)),
                "view" => format!("view {}", word(j + 1)),
                "policy" if word(j + 2) == "on" => {
                    format!("policy {} on {}", word(j + 1), word(j + 3))
                }
                _ => continue,
            };
            found.entry(key).or_default().push(format!("{file}:{line}"));
        }
    }
    found
}

/// Every definition made more than once, one line each, for the failure message.
fn duplicates(files: &[(String, String)]) -> Vec<String> {
    definitions(files)
        .into_iter()
        .filter(|(_, places)| places.len() > 1)
        .map(|(key, places)| {
            format!(
                "{key}: {} definitions ({})",
                places.len(),
                places.join(", ")
            )
        })
        .collect()
}

/// `(file, sha256)` of each migration `supabase/RELEASED` lists: lines `<sha256>  <file>` (the
/// output of `sha256sum`), `#` comments and blank lines skipped.
fn released(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let mut parts = line.split_whitespace();
            let sum = parts.next().unwrap_or_default().to_lowercase();
            let file = parts.next().unwrap_or_default().to_string();
            (file, sum)
        })
        .collect()
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `table -> file` of every `create table <name>`.
fn created_tables(files: &[(String, String)]) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for (file, text) in files {
        let tokens = tokens(text);
        for (i, window) in tokens.windows(3).enumerate() {
            if window[0].0 == "create" && window[1].0 == "table" {
                let mut j = i + 2;
                if tokens[j].0 == "if" {
                    j += 3; // if not exists
                }
                if let Some((name, _)) = tokens.get(j) {
                    found
                        .entry(name.trim_end_matches(';').to_string())
                        .or_insert_with(|| file.clone());
                }
            }
        }
    }
    found
}

/// `(table, "file:line")` of every column an `alter table` adds (`add [column] <name>`; not
/// `add constraint`, `add primary key`, `add unique`, `add check`, `add foreign key`, `add exclude`).
fn added_columns(files: &[(String, String)]) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (file, text) in files {
        let tokens = tokens(text);
        let word = |i: usize| tokens.get(i).map_or("", |(t, _)| t.as_str());
        for i in 0..tokens.len() {
            if word(i) != "alter" || word(i + 1) != "table" {
                continue;
            }
            let mut j = i + 2;
            while matches!(word(j), "if" | "exists" | "only") {
                j += 1;
            }
            let table = word(j).to_string();
            // The statement's actions, up to its `;`.
            let mut k = j + 1;
            while k < tokens.len() && !word(k - 1).ends_with(';') {
                let next = word(k + 1).trim_start_matches(',');
                if word(k).trim_start_matches(',') == "add"
                    && !matches!(
                        next,
                        "constraint" | "primary" | "unique" | "check" | "foreign" | "exclude"
                    )
                {
                    found.push((table.clone(), format!("{file}:{}", tokens[k].1)));
                }
                k += 1;
            }
        }
    }
    found
}

/// What breaks the release rule (module docs) in `files` (sorted by name), given the
/// `released` migrations; one line each, for the failure message.
fn release_violations(files: &[(String, String)], released: &[(String, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (index, (file, sum)) in released.iter().enumerate() {
        match files.iter().position(|(name, _)| name == file) {
            None => problems.push(format!("{file}: released but not in supabase/migrations")),
            Some(position) => {
                if position != index {
                    problems.push(format!(
                        "{file}: released, but unreleased migrations sort before it \
                         (the released ones are the first, in order)"
                    ));
                }
                let now = sha256_hex(&files[position].1);
                if now != *sum {
                    problems.push(format!(
                        "{file}: changed since its release (sha256 {sum}, now {now}): \
                         a released migration never changes; change things in a new migration"
                    ));
                }
            }
        }
    }
    let is_released = |file: &str| released.iter().any(|(name, _)| name == file);

    for (key, places) in definitions(files) {
        let file_of = |place: &String| place.rsplit_once(':').map_or("", |(f, _)| f).to_string();
        let mut per_file: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for place in &places {
            per_file
                .entry(file_of(place))
                .or_default()
                .push(place.clone());
        }
        for (file, here) in &per_file {
            if here.len() > 1 {
                problems.push(format!(
                    "{key}: {} definitions in {file} ({}): keep only the current one",
                    here.len(),
                    here.join(", ")
                ));
            }
        }
        let unreleased: Vec<&String> = places
            .iter()
            .filter(|place| !is_released(&file_of(place)))
            .collect();
        let mut distinct: Vec<String> = unreleased.iter().map(|p| file_of(p)).collect();
        distinct.dedup();
        if distinct.len() > 1 {
            problems.push(format!(
                "{key}: defined in {} unreleased migrations ({}): nothing between them is \
                 released, so keep only the current body, once",
                distinct.len(),
                unreleased
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }

    let tables = created_tables(files);
    for (table, place) in added_columns(files) {
        if let Some(created) = tables.get(&table).filter(|created| !is_released(created)) {
            problems.push(format!(
                "{table}: a column added at {place}, but {created} (not released) creates the \
                 table: put the column in its create table"
            ));
        }
    }
    problems
}

#[test]
fn migrations_define_every_function_view_and_policy_once() {
    // The check itself catches what it is meant to: any case, any whitespace, a second
    // `create function` of the same name whatever its arguments, but not a comment.
    let sample = |name: &str, text: &str| (name.to_string(), text.to_string());
    let caught = duplicates(&[
        sample(
            "a.sql",
            "create or replace function public.f(p int) returns int\n\
             -- create or replace function public.g() is only mentioned here\n\
             create policy p_select on public.t for select;\n\
             create policy p_select on public.u for select;\n\
             create view public.v as select 1;",
        ),
        sample(
            "b.sql",
            "CREATE  OR\n  REPLACE FUNCTION\tPublic.F (p int, q int) returns int\n\
             /* create function public.g() */\n\
             create policy p_select\n  on public.t for update;\n\
             create or replace view public.v with (security_invoker = true) as select 2;",
        ),
    ]);
    assert_eq!(
        caught,
        [
            "function public.f: 2 definitions (a.sql:1, b.sql:1)",
            "policy p_select on public.t: 2 definitions (a.sql:3, b.sql:4)",
            "view public.v: 2 definitions (a.sql:5, b.sql:6)",
        ]
    );

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("supabase/migrations");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("read supabase/migrations") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "sql") {
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&path).expect("read migration");
            files.push((name, text));
        }
    }
    files.sort();
    assert!(!files.is_empty(), "no migrations in {}", dir.display());

    let all = definitions(&files);
    assert!(
        all.contains_key("function public.whatsapp_fail_message"),
        "the scan found no whatsapp_fail_message: {:?}",
        all.keys().collect::<Vec<_>>()
    );
    // Nothing is released yet: every definition is made once, in one migration.
    let released = released(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("supabase/RELEASED"))
            .expect("read supabase/RELEASED"),
    );
    let problems = release_violations(&files, &released);
    assert!(
        problems.is_empty(),
        "supabase/migrations breaks the release rule (docs/database.md):\n  {}",
        problems.join("\n  ")
    );
    assert!(
        created_tables(&files).contains_key("public.messages"),
        "the scan found no create table public.messages"
    );
    if released.is_empty() {
        let twice = duplicates(&files);
        assert!(
            twice.is_empty(),
            "defined more than once in supabase/migrations (keep only the current definition):\n  {}",
            twice.join("\n  ")
        );
    }
}

#[test]
fn the_release_rule_allows_a_redefinition_only_after_a_release() {
    let sample = |name: &str, text: &str| (name.to_string(), text.to_string());
    let files = [
        sample(
            "1_schema.sql",
            "create table public.t (id int);\n\
             create or replace function public.f() returns int as $$ select 1 $$;",
        ),
        sample(
            "2_next.sql",
            "create or replace function public.f() returns int as $$ select 2 $$;\n\
             alter table public.t add column b int, add constraint t_b check (b > 0);",
        ),
        sample(
            "3_later.sql",
            "create or replace function public.f() returns int as $$ select 3 $$;\n\
             create table public.u (id int);\n\
             alter table only public.u\n  add c int;\n\
             alter table public.u add constraint u_c unique (c);",
        ),
    ];
    let release = |names: &[&str]| -> Vec<(String, String)> {
        names
            .iter()
            .map(|name| {
                let text = &files.iter().find(|(n, _)| n == name).expect("sample").1;
                (name.to_string(), sha256_hex(text))
            })
            .collect()
    };

    // Nothing released: f is defined in three files, t and u get columns by alter table.
    assert_eq!(
        release_violations(&files, &[]),
        [
            "function public.f: defined in 3 unreleased migrations (1_schema.sql:2, \
             2_next.sql:1, 3_later.sql:1): nothing between them is released, so keep only \
             the current body, once",
            "public.t: a column added at 2_next.sql:2, but 1_schema.sql (not released) \
             creates the table: put the column in its create table",
            "public.u: a column added at 3_later.sql:4, but 3_later.sql (not released) \
             creates the table: put the column in its create table",
        ]
    );
    // 1 and 2 released: 3 may redefine f; u is still 3's own table.
    assert_eq!(
        release_violations(&files, &release(&["1_schema.sql", "2_next.sql"])),
        [
            "public.u: a column added at 3_later.sql:4, but 3_later.sql (not released) \
          creates the table: put the column in its create table"
        ]
    );
    // A released file that changed, or released out of order, is caught.
    let mut changed = release(&["1_schema.sql", "2_next.sql"]);
    changed[0].1 = "0".repeat(64);
    let problems = release_violations(&files, &changed);
    assert!(
        problems[0].starts_with("1_schema.sql: changed since its release"),
        "{problems:?}"
    );
    let problems = release_violations(&files, &release(&["2_next.sql"]));
    assert!(
        problems[0].starts_with("2_next.sql: released, but unreleased"),
        "{problems:?}"
    );
    // Two definitions in one file are never right.
    let twice = [sample(
        "1_a.sql",
        "create function private.g() returns int as $$ select 1 $$;\n\
         create or replace function private.g() returns int as $$ select 2 $$;",
    )];
    assert_eq!(
        release_violations(&twice, &release(&[]))[0],
        "function private.g: 2 definitions in 1_a.sql (1_a.sql:1, 1_a.sql:2): keep only the current one"
    );
    assert_eq!(
        released("# comment\n\nABC  1_schema.sql\n"),
        [("1_schema.sql".to_string(), "abc".to_string())]
    );
}
