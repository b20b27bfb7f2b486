//! The RFC 5322 / MIME message `gmail.send_message` hands to Gmail: header values are
//! folded and, when not printable ASCII, RFC 2047 encoded words; bodies are UTF-8 in base64
//! lines (RFC 2045), so no input text can end a header or a part early. Gmail adds `Date` and
//! `Message-ID` and removes `Bcc` before delivery.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use email_address::{EmailAddress, Options};

/// One address of a header: `ada@example.com` or `Ada Lovelace <ada@example.com>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    name: Option<String>,
    address: String,
}

impl Mailbox {
    /// Parses `text`, refusing what is not one address (`field` names the input in errors).
    pub fn parse(field: &str, text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.contains(['\r', '\n']) {
            return Err(format!("`{field}`: `{text}` spans several lines"));
        }
        let options = Options {
            allow_display_text: true,
            ..Options::default()
        };
        // `<ada@example.com>`: an address in brackets without a name.
        let bare = text
            .strip_prefix('<')
            .and_then(|rest| rest.strip_suffix('>'))
            .unwrap_or(text);
        let parsed = EmailAddress::parse_with_options(bare, options)
            .map_err(|error| format!("`{field}`: `{text}` is not an email address: {error}"))?;
        let address = parsed.email().to_owned();
        if !address.is_ascii() {
            return Err(format!(
                "`{field}`: `{address}` is not ASCII; write an internationalised domain in its \
                 `xn--` form"
            ));
        }
        let name = unquote(parsed.display_part().trim());
        Ok(Self {
            name: (!name.is_empty()).then_some(name),
            address,
        })
    }

    /// The mailbox as a header writes it; a name that is not a plain phrase is quoted or
    /// encoded.
    fn render(&self) -> String {
        match &self.name {
            None => self.address.clone(),
            Some(name) => format!("{} <{}>", phrase(name), self.address),
        }
    }
}

/// A display name without the double quotes around it (and their backslash escapes).
fn unquote(name: &str) -> String {
    let Some(inner) = name
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    else {
        return name.to_owned();
    };
    let mut unquoted = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        unquoted.push(if c == '\\' {
            chars.next().unwrap_or(c)
        } else {
            c
        });
    }
    unquoted
}

/// RFC 5322 `atext`: what a word of a display name may hold unquoted.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

/// A display name as a phrase: atoms as they are, other printable ASCII as a quoted
/// string, anything else as encoded words.
fn phrase(name: &str) -> String {
    if !is_printable_ascii(name) || name.contains("=?") {
        return encoded_words(name);
    }
    if name
        .split(' ')
        .all(|word| !word.is_empty() && word.chars().all(is_atext))
    {
        return name.to_owned();
    }
    let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

fn is_printable_ascii(text: &str) -> bool {
    text.chars().all(|c| matches!(c, ' '..='~'))
}

/// The longest header line RFC 5322 recommends, CRLF excluded.
const LINE: usize = 78;
/// UTF-8 bytes per encoded word: 42 bytes are 56 base64 characters, so `=?UTF-8?B?...?=` is
/// 68 (RFC 2047 allows 75) and `Subject: ` with one word fits [`LINE`].
const WORD_BYTES: usize = 42;

/// `text` as RFC 2047 `B` encoded words of whole characters, folded one per line.
fn encoded_words(text: &str) -> String {
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        if chunk.len() + c.len_utf8() > WORD_BYTES {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(chunk);
    }
    words
        .iter()
        .map(|word| format!("=?UTF-8?B?{}?=", STANDARD.encode(word)))
        .collect::<Vec<_>>()
        .join("\r\n ")
}

/// What to send.
#[derive(Debug, Clone)]
pub struct Message {
    pub from: Option<Mailbox>,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub bcc: Vec<Mailbox>,
    pub reply_to: Vec<Mailbox>,
    pub subject: String,
    /// The `Message-ID` of the message this one answers, with its angle brackets.
    pub in_reply_to: Option<String>,
    pub body: Body,
}

/// The message's text: plain, HTML, or both as alternatives of one another.
#[derive(Debug, Clone)]
pub enum Body {
    Text(String),
    Html(String),
    Alternative { text: String, html: String },
}

/// Separates the parts of `multipart/alternative`. It cannot occur in a part: the parts'
/// headers are the two below and their bodies are base64, whose alphabet has no `_`.
const BOUNDARY: &str = "=_stepwise_alternative";

impl Message {
    /// The message in wire form, lines ending in CRLF.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let addresses = [
            ("From", self.from.as_slice()),
            ("To", self.to.as_slice()),
            ("Cc", self.cc.as_slice()),
            ("Bcc", self.bcc.as_slice()),
            ("Reply-To", self.reply_to.as_slice()),
        ];
        for (name, mailboxes) in addresses {
            if !mailboxes.is_empty() {
                let list: Vec<String> = mailboxes.iter().map(Mailbox::render).collect();
                out.push_str(&format!("{name}: {}\r\n", list.join(",\r\n ")));
            }
        }
        out.push_str(&format!("Subject: {}\r\n", subject(&self.subject)));
        if let Some(id) = &self.in_reply_to {
            out.push_str(&format!("In-Reply-To: {id}\r\nReferences: {id}\r\n"));
        }
        out.push_str("MIME-Version: 1.0\r\n");
        match &self.body {
            Body::Text(text) => out.push_str(&part("plain", text)),
            Body::Html(html) => out.push_str(&part("html", html)),
            Body::Alternative { text, html } => {
                out.push_str(&format!(
                    "Content-Type: multipart/alternative; boundary=\"{BOUNDARY}\"\r\n\r\n"
                ));
                // The plain text first: RFC 2046 puts the preferred (richest) part last.
                for (subtype, body) in [("plain", text), ("html", html)] {
                    out.push_str(&format!("--{BOUNDARY}\r\n"));
                    out.push_str(&part(subtype, body));
                }
                out.push_str(&format!("--{BOUNDARY}--\r\n"));
            }
        }
        out
    }
}

/// The `Subject` value: as it is when printable ASCII that fits the line (and holds nothing
/// a reader would take for an encoded word), else encoded words.
fn subject(text: &str) -> String {
    let fits = "Subject: ".len() + text.len() <= LINE;
    if fits && is_printable_ascii(text) && !text.contains("=?") {
        text.to_owned()
    } else {
        encoded_words(text)
    }
}

/// A `text/{subtype}` entity: its headers, a blank line and the text with CRLF line breaks
/// (RFC 2046's canonical form) in base64 lines of 76 characters.
fn part(subtype: &str, body: &str) -> String {
    let canonical = body
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('\n', "\r\n");
    let encoded = STANDARD.encode(canonical);
    let mut out = format!(
        "Content-Type: text/{subtype}; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    );
    for line in encoded.as_bytes().chunks(76) {
        out.extend(line.iter().map(|&byte| char::from(byte)));
        out.push_str("\r\n");
    }
    out
}
