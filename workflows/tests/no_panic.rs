//! `parse_workflow` never panics, whatever it is fed.

mod common;

use common::{TestCatalog, yaml_files};
use proptest::prelude::*;
use stepwise_workflows::parse_workflow;

/// Fragments that reach the interesting code paths when spliced into an example.
const FRAGMENTS: &[&str] = &[
    "${{",
    "}}",
    "${{ steps.",
    "${{ item }}",
    ": ",
    "\n- ",
    "\n  ",
    "[",
    "]",
    "{",
    "}",
    "&a ",
    "*a",
    "needs: [",
    "- id: x\n  uses: core.log\n",
    "retry: { max_attempts: 0 }",
    "'",
    "\"",
    "\t",
    "#",
    "on_error: maybe",
    "if: ${{ a +",
    "timeout: 5",
    "cron: '* *'",
    "~",
    "!!str ",
    "<<: *a",
    "---\n",
    "needs: []",
    "for_each: ${{ x }}",
    "\non_failure:\n  - id: x\n    uses: core.log\n",
    "if: ${{ failure() }}",
    "${{ needs.",
    "on_limit: cancel_new",
];

fn examples() -> Vec<String> {
    yaml_files("examples")
        .into_iter()
        .map(|path| std::fs::read_to_string(path).unwrap())
        .collect()
}

fn mutated_example() -> impl Strategy<Value = String> {
    let examples = examples();
    (
        0..examples.len(),
        prop::collection::vec(
            (
                any::<prop::sample::Index>(),
                0..3usize,
                0..FRAGMENTS.len(),
                0..40usize,
            ),
            1..8,
        ),
    )
        .prop_map(move |(which, edits)| {
            let mut text = examples[which].clone();
            for (at, kind, fragment, length) in edits {
                let mut position = at.index(text.len() + 1);
                while !text.is_char_boundary(position) {
                    position -= 1;
                }
                match kind {
                    0 => text.insert_str(position, FRAGMENTS[fragment]),
                    1 => {
                        let mut end = (position + length).min(text.len());
                        while !text.is_char_boundary(end) {
                            end -= 1;
                        }
                        text.replace_range(position..end, "");
                    }
                    _ => {
                        let mut end = (position + length).min(text.len());
                        while !text.is_char_boundary(end) {
                            end -= 1;
                        }
                        let copy = text[position..end].to_owned();
                        text.insert_str(position, &copy);
                    }
                }
            }
            text
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_text_does_not_panic(source in "\\PC{0,200}") {
        parse_workflow("random.yaml", &source, &TestCatalog::new());
    }

    #[test]
    fn yamlish_text_does_not_panic(source in "([a-z_{}\\[\\]:,\\-\\n $'\"*&|>#!.]|\\$\\{\\{|\\}\\}){0,300}") {
        parse_workflow("yamlish.yaml", &source, &TestCatalog::new());
    }

    #[test]
    fn mutated_examples_do_not_panic(source in mutated_example()) {
        let parsed = parse_workflow("mutated.yaml", &source, &TestCatalog::new());
        for diagnostic in &parsed.diagnostics {
            prop_assert!(diagnostic.line >= 1 && diagnostic.column >= 1);
        }
    }
}
