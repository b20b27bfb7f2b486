//! The HTTP `Link` header (RFC 8288 section 3), enough to follow `rel="next"`.
//!
//! Hand-written rather than the `parse_link_header` crate: that crate strips every quote and
//! space and splits on commas before parsing, so a URI with a comma, a quoted parameter with a
//! comma or space, or `rel="next last"` comes out wrong.

/// A link parameter: its name (lower-cased) and value.
type Param = (String, String);

/// One link-value: its URI reference as written and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Link {
    pub(crate) target: String,
    pub(crate) params: Vec<Param>,
}

impl Link {
    /// Whether the link's `rel` (the first one, as RFC 8288 says) names `relation`.
    pub(crate) fn has_rel(&self, relation: &str) -> bool {
        self.params
            .iter()
            .find(|(name, _)| name == "rel")
            .is_some_and(|(_, rels)| {
                rels.split_ascii_whitespace()
                    .any(|rel| rel.eq_ignore_ascii_case(relation))
            })
    }
}

/// Parses a `Link` field value (several fields joined with `,`).
pub(crate) fn parse(value: &str) -> Result<Vec<Link>, String> {
    let mut links = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_ascii_whitespace());
        if rest.is_empty() {
            return Ok(links);
        }
        let after_open = rest
            .strip_prefix('<')
            .ok_or_else(|| "a link must start with `<`".to_owned())?;
        let (target, after_target) = after_open
            .split_once('>')
            .ok_or_else(|| "a link's `<` has no closing `>`".to_owned())?;
        rest = after_target;
        let mut params = Vec::new();
        loop {
            rest = rest.trim_start();
            let Some(after_semicolon) = rest.strip_prefix(';') else {
                break;
            };
            let (param, after_param) = parameter(after_semicolon.trim_start())?;
            params.extend(param);
            rest = after_param;
        }
        if !(rest.is_empty() || rest.starts_with(',')) {
            return Err(format!("unexpected `{}` after a link", first_char(rest)));
        }
        links.push(Link {
            target: target.trim().to_owned(),
            params,
        });
    }
}

/// `name [= token | quoted-string]` at the start of `input`, and what follows it. An empty
/// parameter (`;;`) yields nothing.
fn parameter(input: &str) -> Result<(Option<Param>, &str), String> {
    let name_end = input
        .find(|c: char| !is_token_char(c))
        .unwrap_or(input.len());
    let (name, rest) = input.split_at(name_end);
    if name.is_empty() {
        return Ok((None, rest));
    }
    let name = name.to_ascii_lowercase();
    let rest = rest.trim_start();
    let Some(after_equals) = rest.strip_prefix('=') else {
        return Ok((Some((name, String::new())), rest));
    };
    let after_equals = after_equals.trim_start();
    if let Some(quoted) = after_equals.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        while let Some((index, c)) = chars.next() {
            match c {
                '"' => return Ok((Some((name, value)), &quoted[index + 1..])),
                '\\' => {
                    let (_, escaped) = chars
                        .next()
                        .ok_or_else(|| format!("parameter `{name}` ends inside an escape"))?;
                    value.push(escaped);
                }
                c => value.push(c),
            }
        }
        return Err(format!(
            "parameter `{name}` has an unterminated quoted value"
        ));
    }
    let value_end = after_equals
        .find(|c: char| !is_token_char(c))
        .unwrap_or(after_equals.len());
    let (value, rest) = after_equals.split_at(value_end);
    Ok((Some((name, value.to_owned())), rest))
}

/// RFC 9110 `tchar`.
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn first_char(text: &str) -> char {
    text.chars().next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(value: &str) -> Option<String> {
        parse(value)
            .expect("parses")
            .into_iter()
            .find(|link| link.has_rel("next"))
            .map(|link| link.target)
    }

    #[test]
    fn finds_next_among_githubs_links() {
        let value = "<https://api.github.com/repositories/1/issues?page=2>; rel=\"next\", \
                     <https://api.github.com/repositories/1/issues?page=5>; rel=\"last\"";
        assert_eq!(
            next(value).as_deref(),
            Some("https://api.github.com/repositories/1/issues?page=2")
        );
        assert_eq!(
            next(
                "<https://api.github.com/x?page=1>; rel=\"prev\", <https://api.github.com/x?page=1>; rel=\"first\""
            ),
            None
        );
    }

    #[test]
    fn keeps_commas_and_semicolons_inside_the_uri() {
        assert_eq!(
            next("<https://h/issues?labels=bug,ui;x&page=2>;rel=next").as_deref(),
            Some("https://h/issues?labels=bug,ui;x&page=2")
        );
    }

    #[test]
    fn reads_quoted_values_with_escapes_spaces_and_commas() {
        let links =
            parse(r#"</a>; title="a \"b\", c"; rel="last next", </b>; REL=prev"#).expect("parses");
        assert_eq!(
            links,
            vec![
                Link {
                    target: "/a".into(),
                    params: vec![
                        ("title".into(), "a \"b\", c".into()),
                        ("rel".into(), "last next".into()),
                    ],
                },
                Link {
                    target: "/b".into(),
                    params: vec![("rel".into(), "prev".into())],
                },
            ]
        );
        assert!(
            links[0].has_rel("NEXT"),
            "relation types are case-insensitive"
        );
        assert!(!links[1].has_rel("next"));
    }

    #[test]
    fn only_the_first_rel_counts() {
        assert_eq!(next("</a>; rel=prev; rel=next"), None);
    }

    #[test]
    fn an_empty_value_has_no_links() {
        assert_eq!(parse(" , ").expect("parses"), Vec::new());
    }

    #[test]
    fn refuses_malformed_values() {
        assert!(parse("https://h/a; rel=next").is_err(), "no angle brackets");
        assert!(parse("<https://h/a; rel=next").is_err(), "unclosed");
        assert!(parse("</a>; rel=\"next").is_err(), "unterminated quote");
        assert!(parse("</a> junk").is_err(), "trailing garbage");
    }
}
