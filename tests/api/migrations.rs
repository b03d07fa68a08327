//! The migrations define every SQL function, view and policy once, in its current form: no
//! `create or replace` of an earlier body, so the one definition in `supabase/migrations/` is
//! the one the database runs. (No database needed: the files are read as text.)

use std::collections::BTreeMap;
use std::path::Path;

/// `kind name -> ["file:line", ...]` for every `create [or replace] function <name>`,
/// `create [or replace] view <name>` and `create policy <name> on <table>` (keyed by table and
/// name) in `files`. Case-insensitive, any whitespace (line breaks too); `--` and `/* */`
/// comments are skipped, so prose that mentions a function is not a definition.
fn definitions(files: &[(String, String)]) -> BTreeMap<String, Vec<String>> {
    let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (file, text) in files {
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
                    let block_first =
                        block_comment.is_some_and(|b| line_comment.is_none_or(|l| b < l));
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
    let twice = duplicates(&files);
    assert!(
        twice.is_empty(),
        "defined more than once in supabase/migrations (keep only the current definition):\n  {}",
        twice.join("\n  ")
    );
}
