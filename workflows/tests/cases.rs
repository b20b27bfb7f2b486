//! Data-driven diagnostics tests: each `tests/cases/NAME.yaml` is parsed and its rendered
//! diagnostics compared with `tests/cases/NAME.expected`. Adding a case is adding a file;
//! `UPDATE_EXPECT=1 cargo test -p stepwise-workflows --test cases` writes the expectations.

mod common;

use common::{TestCatalog, yaml_files};
use expect_test::expect_file;
use stepwise_workflows::parse_workflow;

#[test]
fn cases() {
    let cases = yaml_files("tests/cases");
    assert!(!cases.is_empty());
    for path in cases {
        let source = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let parsed = parse_workflow(&name, &source, &TestCatalog::new());
        let mut actual: String = parsed
            .diagnostics
            .iter()
            .map(|diagnostic| format!("{}\n", diagnostic.render(&name)))
            .collect();
        if actual.is_empty() {
            actual = "(no diagnostics)\n".into();
        }
        expect_file![path.with_extension("expected")].assert_eq(&actual);
    }
}
