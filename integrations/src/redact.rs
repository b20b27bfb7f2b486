//! Masking secret values in text and JSON before it is stored, logged or shown.
//!
//! Pure: no I/O. The executor redacts step inputs, outputs, errors and logs with it; the
//! logging middleware of outbound calls uses the same type.

use std::borrow::Cow;

use serde_json::Value;

use crate::secrets::MASK;

/// Values shorter than this are not masked. A one- to three-character value occurs inside
/// ordinary text (`a` in `status`), so masking it mangles unrelated data, and where the `***`
/// lands tells a reader the value; a value that short is guessable anyway. Azure Pipelines'
/// and GitHub Actions' runners skip short values for the same reason.
pub const MIN_SECRET_LENGTH: usize = 4;

/// Replaces every occurrence of any of a set of secret values with `***`.
///
/// Occurrences that overlap (one secret inside another, or two that share characters where
/// they meet) are merged into one masked span, so no fragment of any secret survives. Values
/// shorter than [`MIN_SECRET_LENGTH`] characters are ignored.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Without duplicates or values shorter than [`MIN_SECRET_LENGTH`].
    needles: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("values", &self.needles.len())
            .finish()
    }
}

impl Redactor {
    pub fn new<I, S>(values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut needles: Vec<String> = values
            .into_iter()
            .map(|value| value.as_ref().to_owned())
            .filter(|value| value.chars().count() >= MIN_SECRET_LENGTH)
            .collect();
        needles.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        needles.dedup();
        Self { needles }
    }

    /// Masks `value` too (unless it is shorter than [`MIN_SECRET_LENGTH`] or known already).
    pub fn add(&mut self, value: &str) {
        if value.chars().count() >= MIN_SECRET_LENGTH && !self.needles.iter().any(|n| n == value) {
            self.needles.push(value.to_owned());
        }
    }

    /// The values it masks, to seal together with data it masked (so whoever reads the true
    /// data masks them too). Never log or show them.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.needles.iter().map(String::as_str)
    }

    /// True when there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `text` with every secret masked; borrowed when nothing matched.
    pub fn redact_str<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for needle in &self.needles {
            let mut from = 0;
            while let Some(found) = text[from..].find(needle.as_str()) {
                let start = from + found;
                spans.push((start, start + needle.len()));
                // Continue one character later: occurrences of one value may overlap too.
                from = start + text[start..].chars().next().map_or(1, char::len_utf8);
            }
        }
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }
        spans.sort_unstable();
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        let mut spans = spans.into_iter().peekable();
        while let Some((start, mut end)) = spans.next() {
            while let Some(&(next_start, next_end)) = spans.peek() {
                if next_start >= end {
                    break;
                }
                end = end.max(next_end);
                spans.next();
            }
            out.push_str(&text[copied..start]);
            out.push_str(MASK);
            copied = end;
        }
        out.push_str(&text[copied..]);
        Cow::Owned(out)
    }

    /// Masks secrets in every string value of the tree. Object keys are left alone: they are
    /// names a workflow chose, and masking them would change the data's shape.
    pub fn redact_json(&self, value: &mut Value) {
        if self.is_empty() {
            return;
        }
        match value {
            Value::String(text) => {
                if let Cow::Owned(redacted) = self.redact_str(text) {
                    *text = redacted;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| self.redact_json(item)),
            Value::Object(object) => object.values_mut().for_each(|item| self.redact_json(item)),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// A redacted copy of `value`.
    pub fn redacted_json(&self, value: &Value) -> Value {
        let mut copy = value.clone();
        self.redact_json(&mut copy);
        copy
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn redact(secrets: &[&str], text: &str) -> String {
        Redactor::new(secrets).redact_str(text).into_owned()
    }

    #[test]
    fn masks_every_occurrence() {
        assert_eq!(
            redact(&["s3cret"], "a s3cret and s3cret again"),
            "a *** and *** again"
        );
        assert_eq!(redact(&["s3cret"], "nothing here"), "nothing here");
        assert!(matches!(
            Redactor::new(["wxyz"]).redact_str("abcdef"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn a_secret_inside_another_is_masked_whole() {
        assert_eq!(redact(&["abcd", "abcdef"], "xabcdefx"), "x***x");
        assert_eq!(redact(&["abcdef", "abcd"], "xabcdefx abcd"), "x***x ***");
        assert_eq!(redact(&["cdef", "abcdefg"], "abcdefg"), "***");
    }

    #[test]
    fn partly_overlapping_secrets_leave_no_fragment() {
        assert_eq!(redact(&["abcd", "cdef"], "_abcdef_"), "_***_");
        assert_eq!(redact(&["aaaa"], "aaaaa"), "***");
        assert_eq!(redact(&["abcd", "efgh"], "abcdefgh"), "******");
    }

    #[test]
    fn values_shorter_than_the_minimum_are_not_masked() {
        let redactor = Redactor::new(["", "a", "pw", "key", "long"]);
        assert_eq!(
            redactor.redact_str("a status with a key, pw and long"),
            "a status with a key, pw and ***"
        );
        assert!(Redactor::new(["", "a", "abc"]).is_empty());
        // Characters, not bytes: three two-byte characters are still too short.
        assert!(Redactor::new(["äöü"]).is_empty());
    }

    #[test]
    fn works_on_multibyte_text() {
        assert_eq!(redact(&["héllo"], "ça héllo ü"), "ça *** ü");
        assert_eq!(redact(&["üüüü"], "üüüü-üüüüü"), "***-***");
    }

    #[test]
    fn redacts_json_values_at_every_depth_but_never_keys() {
        let redactor = Redactor::new(["tok3n", "pass"]);
        let mut value = json!({
            "header": "Bearer tok3n",
            "tok3n": {"nested": ["pass", 1, true, null, {"deep": "x-pass-x"}]},
            "password": "pass",
            "count": 3
        });
        redactor.redact_json(&mut value);
        assert_eq!(
            value,
            json!({
                "header": "Bearer ***",
                "tok3n": {"nested": ["***", 1, true, null, {"deep": "x-***-x"}]},
                "password": "***",
                "count": 3
            })
        );
        let original = json!(["tok3n"]);
        assert_eq!(redactor.redacted_json(&original), json!(["***"]));
        assert_eq!(original, json!(["tok3n"]));
    }

    #[test]
    fn debug_does_not_show_the_values() {
        let debug = format!("{:?}", Redactor::new(["hunter2"]));
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}
