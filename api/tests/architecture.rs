//! Keeps the layering of ARCHITECTURE.md true: which crate may depend on which, and which
//! crates may import the database, queue, HTTP-server and CLI libraries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Internal dependencies each crate may have (normal dependencies only).
const ALLOWED_INTERNAL: &[(&str, &[&str])] = &[
    ("stepwise-workflows", &[]),
    ("stepwise-integrations", &["stepwise-workflows"]),
    ("stepwise-migrations", &[]),
    (
        "stepwise-engine",
        &[
            "stepwise-workflows",
            "stepwise-integrations",
            "stepwise-migrations",
        ],
    ),
    (
        "stepwise-api",
        &[
            "stepwise-workflows",
            "stepwise-integrations",
            "stepwise-engine",
        ],
    ),
    // The benchmark drives the real HTTP server (webhook acknowledgements); it is a tool,
    // so it may depend on the api crate, which nothing in the product does.
    (
        "stepwise-bench",
        &[
            "stepwise-workflows",
            "stepwise-integrations",
            "stepwise-engine",
            "stepwise-api",
        ],
    ),
];

/// External crates reserved to one layer: (crate, the only packages allowed to depend on it).
const RESERVED: &[(&str, &[&str])] = &[
    ("sea-orm", &["stepwise-engine"]),
    ("sea-orm-migration", &["stepwise-migrations"]),
    ("apalis", &["stepwise-engine"]),
    ("apalis-core", &["stepwise-engine"]),
    ("apalis-sqlite", &["stepwise-engine"]),
    ("apalis-postgres", &["stepwise-engine"]),
    ("sqlx", &["stepwise-engine", "stepwise-bench"]),
    // The bench serves a bare actix handler beside the real server, as the reference.
    ("actix-web", &["stepwise-api", "stepwise-bench"]),
    ("clap", &["stepwise-api", "stepwise-bench"]),
    (
        "tokio",
        &[
            "stepwise-integrations",
            "stepwise-engine",
            "stepwise-api",
            "stepwise-bench",
        ],
    ),
    ("reqwest", &["stepwise-integrations"]),
];

fn metadata() -> Value {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(output.status.success(), "cargo metadata failed");
    serde_json::from_slice(&output.stdout).expect("cargo metadata JSON")
}

/// Normal (non-dev, non-build) dependencies of every workspace package.
fn dependencies() -> BTreeMap<String, (PathBuf, Vec<String>)> {
    let metadata = metadata();
    metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|package| {
            let name = package["name"].as_str().unwrap().to_owned();
            let manifest = PathBuf::from(package["manifest_path"].as_str().unwrap());
            let deps = package["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|dep| dep["kind"].is_null())
                .map(|dep| dep["name"].as_str().unwrap().to_owned())
                .collect();
            (name, (manifest, deps))
        })
        .collect()
}

#[test]
fn internal_dependencies_follow_the_layering() {
    let packages = dependencies();
    for (name, (_, deps)) in &packages {
        let allowed = ALLOWED_INTERNAL
            .iter()
            .find(|(package, _)| package == name)
            .unwrap_or_else(|| panic!("{name} is not in the layering table of this test"))
            .1;
        for dep in deps.iter().filter(|dep| dep.starts_with("stepwise-")) {
            assert!(
                allowed.contains(&dep.as_str()),
                "{name} must not depend on {dep} (see ARCHITECTURE.md)"
            );
        }
        assert!(
            name == "stepwise-bench" || !deps.iter().any(|dep| dep == "stepwise-api"),
            "nothing in the product may depend on stepwise-api, but {name} does"
        );
    }
}

#[test]
fn reserved_libraries_stay_in_their_layer() {
    for (name, (_, deps)) in dependencies() {
        for (library, owners) in RESERVED {
            if deps.iter().any(|dep| dep == library) {
                assert!(
                    owners.contains(&name.as_str()),
                    "{name} depends on {library}, which only {owners:?} may use"
                );
            }
        }
    }
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn source_imports_match_the_declared_layering() {
    let forbidden: &[(&str, &[&str])] = &[
        (
            "stepwise-workflows",
            &[
                "tokio::",
                "sea_orm",
                "sqlx",
                "apalis",
                "reqwest",
                "actix_web",
                "std::fs",
                "std::net",
            ],
        ),
        (
            "stepwise-integrations",
            &["sea_orm", "sqlx", "apalis", "actix_web", "clap"],
        ),
        ("stepwise-engine", &["actix_web", "clap"]),
    ];
    for (name, (manifest, _)) in dependencies() {
        let Some((_, patterns)) = forbidden.iter().find(|(package, _)| *package == name) else {
            continue;
        };
        let mut files = Vec::new();
        rust_files(&manifest.parent().unwrap().join("src"), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read source");
            for pattern in *patterns {
                assert!(
                    !text.contains(pattern),
                    "{} uses `{pattern}`, which {name} must not (see ARCHITECTURE.md)",
                    file.display()
                );
            }
        }
    }
}

/// Secret values are never read back through the API: only the engine's executor decrypts them.
#[test]
fn the_api_never_reads_secret_values() {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read source");
        assert!(
            !text.contains("tenant_secrets")
                && !text.contains("expose_as_json")
                && !text.contains("connection_auth"),
            "{} reads secret values; the API must never return or log them",
            file.display()
        );
    }
}

/// Top-level folders whose files code and docs may name.
const TREE_ROOTS: &[&str] = &[
    ".ci/",
    "api/",
    "bench/",
    "engine/",
    "fuzz/",
    "integrations/",
    "migrations/",
    "web/",
    "workflows/",
];

/// Extensions of the files a reference may name (a token without one is prose, not a path).
const CITED_EXTENSIONS: &[&str] = &[
    "css", "html", "js", "json", "md", "mjs", "rs", "sh", "toml", "txt", "yaml", "yml",
];

/// The repository stands on its own: every file a tracked file names exists, and nothing
/// names a document kept outside the tree.
#[test]
fn the_repository_cites_only_files_it_contains() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let listed = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root)
        .output()
        .expect("run git ls-files");
    assert!(listed.status.success(), "git ls-files failed");
    let tracked: Vec<String> = listed
        .stdout
        .split(|byte| *byte == 0)
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .collect();
    let mut broken = Vec::new();
    for name in &tracked {
        // The contract extractor and its extracts (a provider folder's
        // `contract/openapi.json`) name files inside npm packages; lock files are generated.
        if name.is_empty()
            || name.starts_with("integrations/contract/")
            || name.ends_with("/contract/openapi.json")
            || name.ends_with("package-lock.json")
        {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(root.join(name)) else {
            continue;
        };
        for (index, line) in text.lines().enumerate() {
            // A provider's contract source is a file inside its npm package.
            if name.ends_with("/provider.yaml") && line.trim_start().starts_with("file:") {
                continue;
            }
            for token in line.split(|c: char| {
                c.is_whitespace()
                    || matches!(c, '`' | '(' | ')' | '"' | '\'' | ',' | ';' | '[' | ']')
            }) {
                let token = token.trim_start_matches("./").trim_end_matches([':', '.']);
                // A document is named by its file name alone (`ARCHITECTURE.md`) or by a path
                // that climbs from a file to the tree's top; one the tree has nowhere, or a
                // climb into a folder the tree lacks, is kept outside it.
                let climbed = token.trim_start_matches("../");
                let outside = if climbed.ends_with(".md") && !climbed.contains('/') {
                    climbed.len() > ".md".len()
                        && !tracked
                            .iter()
                            .any(|path| path.rsplit('/').next() == Some(climbed))
                } else {
                    climbed.len() < token.len()
                        && !climbed.is_empty()
                        && !tracked
                            .iter()
                            .any(|path| path.split('/').next() == climbed.split('/').next())
                };
                let names_a_tree_file = TREE_ROOTS.iter().any(|dir| token.starts_with(dir))
                    && !token.contains(['<', '>', '*', '{', '}', '$', '#'])
                    && !token.contains("node_modules/")
                    && Path::new(token)
                        .extension()
                        .is_some_and(|ext| CITED_EXTENSIONS.iter().any(|known| ext == *known));
                if outside || (names_a_tree_file && !root.join(token).exists()) {
                    broken.push(format!("{name}:{}: {token}", index + 1));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "files name documents the repository does not contain:\n{}",
        broken.join("\n")
    );
}

/// The places that once listed the providers by hand. They derive from the providers'
/// declarations (ARCHITECTURE.md, `integrations/`), so none may name a declared provider.
/// `webhooks/mod.rs` is not among them: it holds the signature schemes, which are code.
const DERIVED_FROM_DECLARATIONS: &[&str] = &[
    "integrations/src/runtime/mod.rs",
    "integrations/src/ratelimit/profile.rs",
    "integrations/src/providers.rs",
    "integrations/contract/refresh.mjs",
    "integrations/tests/contract_fixtures.rs",
    "engine/src/webhooks.rs",
    "api/src/metrics.rs",
    "api/src/routes/providers.rs",
    "api/src/routes/sources.rs",
    "api/src/routes/webhooks.rs",
    "web/connect.js",
];

/// The code of `text` (a Rust or JavaScript file): comment lines, OpenAPI examples and Rust
/// unit tests dropped.
fn code_lines(text: &str) -> Vec<&str> {
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    code.lines()
        .filter(|line| {
            let line = line.trim_start();
            !(line.starts_with("//")
                || line.starts_with('*')
                || line.starts_with("/*")
                || line.starts_with("#[schema(example"))
        })
        .collect()
}

/// Whether `line` names provider `name`: as a string (`"slack"`, `"slack.post_message"`) or
/// as a JavaScript object key (`slack: {`).
fn names_provider(line: &str, name: &str) -> bool {
    ['"', '\'', '`'].iter().any(|quote| {
        line.contains(&format!("{quote}{name}{quote}")) || line.contains(&format!("{quote}{name}."))
    }) || line.trim_start().starts_with(&format!("{name}: {{"))
}

/// A provider is its folder (`integrations/src/catalog/{name}/`: `provider.yaml`, its actions,
/// their tests and contract fixtures) and one registration line: everything else derives from
/// the declaration, and the test harnesses find the folders.
#[test]
fn adding_a_provider_touches_its_folder_and_one_registration_line() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("root");
    let catalog = root.join("integrations/src/catalog");
    let mut folders: Vec<String> = std::fs::read_dir(&catalog)
        .expect("catalog")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.join("provider.yaml").is_file())
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    let mut declared: Vec<&str> = stepwise_integrations::providers::provider_names().collect();
    declared.sort_unstable();
    assert_eq!(
        folders, declared,
        "every folder with a provider.yaml is registered, and only those"
    );

    let registry = std::fs::read_to_string(catalog.join("mod.rs")).expect("catalog/mod.rs");
    let registration: Vec<&str> = code_lines(&registry)
        .into_iter()
        .filter(|line| line.contains("providers!("))
        .collect();
    assert_eq!(
        registration.len(),
        1,
        "one registration line: {registration:?}"
    );
    for name in &declared {
        assert!(
            registration[0].contains(name),
            "{name} is not in the registration line"
        );
        let elsewhere = code_lines(&registry)
            .into_iter()
            .filter(|line| !line.contains("providers!(") && names_provider(line, name))
            .count();
        assert_eq!(
            elsewhere, 0,
            "catalog/mod.rs names {name} outside its registration"
        );
    }

    for file in DERIVED_FROM_DECLARATIONS {
        let text = std::fs::read_to_string(root.join(file)).expect(file);
        for line in code_lines(&text) {
            for name in &declared {
                assert!(
                    !names_provider(line, name),
                    "{file} names provider `{name}`: derive it from the declarations \
                     (integrations/src/providers.rs) instead: {line}"
                );
            }
        }
    }

    let actions: Vec<&str> = stepwise_integrations::Registry::builtin()
        .iter()
        .map(|action| action.name())
        .filter(|action| {
            action
                .split_once('.')
                .is_some_and(|(provider, _)| declared.contains(&provider))
        })
        .collect();
    assert!(!actions.is_empty(), "the providers declare actions");
    let mut harness_files = Vec::new();
    for dir in ["integrations/tests", "integrations/contract"] {
        text_files(&root.join(dir), &mut harness_files);
    }
    for file in harness_files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for action in &actions {
            assert!(
                !names_action(&text, action),
                "{} names `{action}`: a provider's tests and fixtures live in its folder \
                 (integrations/README.md, step 5)",
                file.display()
            );
        }
    }

    for name in &declared {
        let contract = catalog.join(name).join("contract");
        let fixtures = std::fs::read_dir(&contract)
            .map(|entries| {
                entries
                    .map(|entry| entry.expect("entry").path())
                    .filter(|path| {
                        path.extension().is_some_and(|ext| ext == "json")
                            && !path.ends_with("openapi.json")
                    })
                    .count()
            })
            .unwrap_or(0);
        let reason = stepwise_integrations::providers::provider(name)
            .and_then(|spec| spec.no_fixtures.as_deref())
            .filter(|reason| !reason.trim().is_empty());
        assert!(
            (fixtures > 0) != reason.is_some(),
            "catalog/{name}: contract fixtures in `contract/` ({fixtures}) or, without any, \
             `no_fixtures:` in provider.yaml saying why ({reason:?}); not both"
        );
    }
}

/// Every file below `dir` but installed npm packages and lock files.
fn text_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().unwrap_or_default();
        if name == "node_modules" || name == "package-lock.json" {
            continue;
        }
        if path.is_dir() {
            text_files(&path, found);
        } else {
            found.push(path);
        }
    }
}

/// Whether `text` names `action` (`slack.post_message`) as a whole word.
fn names_action(text: &str, action: &str) -> bool {
    text.match_indices(action).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + action.len()..].chars().next();
        let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        !word(before) && !word(after)
    })
}

/// A provider's error answers are read by its declared envelope (`errors:` in its
/// `provider.yaml`, `integrations/src/declarative/envelope.rs`), for declared and Rust actions
/// alike: no file in a provider's folder classifies a status or names an error code itself.
#[test]
fn provider_actions_read_errors_only_through_the_declared_envelope() {
    let catalog = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("root")
        .join("integrations/src/catalog");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&catalog).expect("catalog") {
        let folder = entry.expect("entry").path();
        if folder.join("provider.yaml").is_file() {
            rust_files(&folder, &mut files);
        }
    }
    // A folder's `tests.rs` is its wiremock tests (`#[cfg(test)] mod tests;`), which assert
    // how errors are classified.
    files.retain(|file| !file.ends_with("tests.rs"));
    assert!(!files.is_empty(), "the provider folders hold Rust files");
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read source");
        for line in code_lines(&text) {
            for pattern in [
                "error_for_status",
                "is_client_error",
                "is_server_error",
                "transient_codes",
                "ActionError::Retryable",
            ] {
                assert!(
                    !line.contains(pattern),
                    "{} classifies errors itself (`{pattern}`): read them with \
                     `crate::declarative::check`: {line}",
                    file.display()
                );
            }
        }
    }
}
