//! 8BITMIME downgrade (RFC 6152 §3): 8-bit content for a next hop that
//! does not offer 8BITMIME is converted to 7-bit, as Postfix's smtp(8)
//! does unless `disable_mime_output_conversion = yes`: every MIME leaf part
//! whose body has 8-bit octets is re-encoded as quoted-printable,
//! `multipart/*` and `message/rfc822` are walked into, and their own
//! `8bit` labels become `7bit`. A header with 8-bit octets cannot be
//! converted (towerpost does not rewrite headers into RFC 2047 words), and
//! neither can an entity that claims an encoding its octets break; such
//! mail bounces with 5.6.3.
//!
//! Without I/O; the content is stored as canonical CRLF text.

use std::borrow::Cow;

/// How deep `multipart` and `message/rfc822` may nest before the walk
/// gives up (a hostile message must not recurse without bound).
const MAX_DEPTH: usize = 32;

/// Why a message cannot be sent as 7-bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Impossible(pub(super) &'static str);

/// The content in 7-bit form, borrowed unchanged when it already is.
pub(super) fn to_7bit(content: &[u8]) -> Result<Cow<'_, [u8]>, Impossible> {
    if content.is_ascii() {
        return Ok(Cow::Borrowed(content));
    }
    let mut out = Vec::with_capacity(content.len() + content.len() / 8);
    entity(content, Default::Text, 0, true, &mut out)?;
    Ok(Cow::Owned(out))
}

/// The content type a part has when it declares none (RFC 2046 §5.1.5).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Default {
    Text,
    Message,
}

/// One MIME entity (a message or a body part): header fields, then body.
fn entity(
    bytes: &[u8],
    default: Default,
    depth: usize,
    top: bool,
    out: &mut Vec<u8>,
) -> Result<(), Impossible> {
    if depth > MAX_DEPTH {
        return Err(Impossible("MIME nesting too deep to convert to 7-bit"));
    }
    let (head, body) = split_entity(bytes);
    if bytes.is_ascii() {
        // Unchanged, except that an 8bit label on 7-bit content becomes
        // 7bit (RFC 2045 §6.4: no 8bit part inside a 7bit one).
        let fields = fields(head);
        let labelled_8bit = field_value(&fields, "content-transfer-encoding")
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "8bit" | "binary"));
        if labelled_8bit {
            write_fields(&fields, Some("7bit"), false, out);
            out.extend_from_slice(&bytes[head.len()..]);
        } else {
            out.extend_from_slice(bytes);
        }
        return Ok(());
    }
    if !head.is_ascii() {
        return Err(Impossible("8-bit data in a message header"));
    }
    let fields = fields(head);
    let content_type = field_value(&fields, "content-type")
        .map(|v| v.to_ascii_lowercase())
        .unwrap_or_else(|| match default {
            Default::Text => "text/plain".to_owned(),
            Default::Message => "message/rfc822".to_owned(),
        });
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let encoding = field_value(&fields, "content-transfer-encoding")
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_else(|| "7bit".to_owned());

    if media.starts_with("multipart/") {
        let Some(boundary) = parameter(&content_type_raw(&fields), "boundary") else {
            return Err(Impossible("multipart without a boundary"));
        };
        write_fields(&fields, Some("7bit"), top, out);
        out.extend_from_slice(b"\r\n");
        let inner = if media == "multipart/digest" {
            Default::Message
        } else {
            Default::Text
        };
        return multipart(body, &boundary, inner, depth, out);
    }
    if media == "message/rfc822" {
        write_fields(&fields, Some("7bit"), top, out);
        out.extend_from_slice(b"\r\n");
        return entity(body, Default::Text, depth + 1, false, out);
    }
    if media.starts_with("message/") {
        return Err(Impossible(
            "8-bit data in a message/* part other than message/rfc822",
        ));
    }
    if encoding == "quoted-printable" || encoding == "base64" {
        return Err(Impossible("8-bit data in a part that claims to be encoded"));
    }
    write_fields(&fields, Some("quoted-printable"), top, out);
    out.extend_from_slice(b"\r\n");
    // The final CRLF ends the last line: it is not encoded, in either mode.
    let (data, final_crlf) = match body.strip_suffix(b"\r\n") {
        Some(rest) => (rest, true),
        None => (body, false),
    };
    let mode = if media.starts_with("text/") {
        quoted_printable::InputMode::Text
    } else {
        // Not text: line ends are octets like any other.
        quoted_printable::InputMode::Binary
    };
    // 73, not 76: room to write a leading '-' as "=2D" below.
    let options = quoted_printable::Options::default()
        .line_length_limit(73)
        .input_mode(mode);
    let encoded = quoted_printable::encode_with_options(data, options);
    push_boundary_safe(out, encoded.as_bytes());
    if final_crlf {
        out.extend_from_slice(b"\r\n");
    }
    Ok(())
}

/// Appends encoded lines, writing a '-' that starts a line as `=2D`: a
/// soft line break may otherwise put `--boundary` at the start of a line,
/// where an enclosing multipart would take it for its delimiter.
fn push_boundary_safe(out: &mut Vec<u8>, encoded: &[u8]) {
    let mut line_start = true;
    for &b in encoded {
        if line_start && b == b'-' {
            out.extend_from_slice(b"=2D");
        } else {
            out.push(b);
        }
        line_start = b == b'\n';
    }
}

/// The header section (up to, not including, the empty line) and the body.
fn split_entity(bytes: &[u8]) -> (&[u8], &[u8]) {
    if bytes.starts_with(b"\r\n") {
        return (b"", &bytes[2..]);
    }
    match memchr::memmem::find(bytes, b"\r\n\r\n") {
        Some(i) => (&bytes[..i + 2], &bytes[i + 4..]),
        None => (bytes, b""),
    }
}

/// The header fields, each with its continuation lines and line ends.
fn fields(head: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = Vec::new();
    let mut start = 0;
    let mut at = 0;
    while at < head.len() {
        let end = memchr::memchr(b'\n', &head[at..]).map_or(head.len(), |i| at + i + 1);
        if at > start && !matches!(head[at], b' ' | b'\t') {
            out.push(&head[start..at]);
            start = at;
        }
        at = end;
    }
    if start < head.len() {
        out.push(&head[start..]);
    }
    out
}

fn field_name(field: &[u8]) -> &[u8] {
    let colon = memchr::memchr(b':', field).unwrap_or(field.len());
    field[..colon].trim_ascii()
}

/// A field's value, unfolded (ASCII: checked by the caller).
fn field_value(fields: &[&[u8]], name: &str) -> Option<String> {
    let field = fields
        .iter()
        .find(|f| field_name(f).eq_ignore_ascii_case(name.as_bytes()))?;
    let colon = memchr::memchr(b':', field)?;
    let value = String::from_utf8_lossy(&field[colon + 1..]);
    Some(value.replace("\r\n", "").trim().to_owned())
}

fn content_type_raw(fields: &[&[u8]]) -> String {
    field_value(fields, "content-type").unwrap_or_default()
}

/// A parameter of a structured value (`boundary="x"`), case kept.
fn parameter(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case(name).then(|| {
            let v = v.trim();
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v)
                .to_owned()
        })
    })
}

/// Writes the fields with `Content-Transfer-Encoding` set to `encoding`
/// (top level: adds `MIME-Version` if the message had none).
fn write_fields(fields: &[&[u8]], encoding: Option<&str>, top: bool, out: &mut Vec<u8>) {
    let is = |f: &&[u8], name: &str| field_name(f).eq_ignore_ascii_case(name.as_bytes());
    for f in fields {
        if encoding.is_some() && is(f, "content-transfer-encoding") {
            continue;
        }
        out.extend_from_slice(f);
    }
    if top && !fields.iter().any(|f| is(f, "mime-version")) {
        out.extend_from_slice(b"MIME-Version: 1.0\r\n");
    }
    if let Some(e) = encoding {
        out.extend_from_slice(format!("Content-Transfer-Encoding: {e}\r\n").as_bytes());
    }
}

/// A multipart body: preamble, parts between `--boundary` lines, epilogue.
/// Parts are slices of `body` (no copies: nesting must not multiply the
/// memory a message takes).
fn multipart(
    body: &[u8],
    boundary: &str,
    inner: Default,
    depth: usize,
    out: &mut Vec<u8>,
) -> Result<(), Impossible> {
    let delimiter = format!("--{boundary}");
    let mut at = 0;
    // Where the current part began, once a delimiter opened one.
    let mut part: Option<usize> = None;
    let mut closed = false;
    while at < body.len() {
        let end = memchr::memchr(b'\n', &body[at..]).map_or(body.len(), |i| at + i + 1);
        let line = &body[at..end];
        let text = line.strip_suffix(b"\r\n").unwrap_or(line);
        let is_delimiter = !closed
            && text.starts_with(delimiter.as_bytes())
            && text[delimiter.len()..]
                .iter()
                .all(|&b| b == b'-' || b == b' ' || b == b'\t');
        if is_delimiter {
            if let Some(start) = part.take() {
                // The CRLF before a delimiter belongs to the delimiter.
                let content = &body[start..at];
                let trimmed = content.strip_suffix(b"\r\n");
                entity(trimmed.unwrap_or(content), inner, depth + 1, false, out)?;
                if trimmed.is_some() {
                    out.extend_from_slice(b"\r\n");
                }
            }
            out.extend_from_slice(line);
            if text[delimiter.len()..].starts_with(b"--") {
                closed = true;
            } else {
                part = Some(end);
            }
        } else if part.is_none() {
            // Preamble and epilogue are not shown to readers; 8-bit octets
            // there would still break a 7-bit hop.
            if !line.is_ascii() {
                return Err(Impossible("8-bit data outside the parts of a multipart"));
            }
            out.extend_from_slice(line);
        }
        at = end;
    }
    if let Some(start) = part {
        // Unterminated multipart: convert what there is.
        entity(&body[start..], inner, depth + 1, false, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(s: &[u8]) -> String {
        String::from_utf8(to_7bit(s).unwrap().into_owned()).unwrap()
    }

    #[test]
    fn ascii_content_is_borrowed_unchanged() {
        let msg = b"Subject: x\r\n\r\nplain\r\n";
        assert!(matches!(to_7bit(msg).unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn an_8bit_text_body_becomes_quoted_printable() {
        let got = convert(
            "Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\ncafé = bon\r\nline two\r\n"
                .as_bytes(),
        );
        assert_eq!(
            got,
            "Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\nMIME-Version: 1.0\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 =3D bon\r\nline two\r\n"
        );
        assert!(got.is_ascii());
    }

    #[test]
    fn multipart_converts_only_the_8bit_parts() {
        let msg = "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
                   preamble\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGrüße\r\n\
                   --b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n\
                   --b1--\r\nepilogue\r\n";
        let got = convert(msg.as_bytes());
        assert!(got.is_ascii());
        assert!(got.contains("Content-Type: multipart/mixed; boundary=\"b1\"\r\nContent-Transfer-Encoding: 7bit\r\n"), "{got}");
        assert!(
            got.contains(
                "Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe\r\n--b1\r\n"
            ),
            "{got}"
        );
        assert!(
            got.contains("Content-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b1--\r\nepilogue\r\n"),
            "{got}"
        );
        assert_eq!(got.matches("MIME-Version").count(), 1);
    }

    #[test]
    fn message_rfc822_is_walked_into() {
        let msg = "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
                   Subject: inner\r\n\r\nà la carte\r\n";
        let got = convert(msg.as_bytes());
        assert!(got.starts_with("Content-Type: message/rfc822\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: 7bit\r\n\r\nSubject: inner\r\n"), "{got}");
        assert!(
            got.contains("Content-Transfer-Encoding: quoted-printable\r\n\r\n=C3=A0 la carte\r\n"),
            "{got}"
        );
    }

    #[test]
    fn no_encoded_line_can_pose_as_a_boundary() {
        let long = format!("{}--b1 {}\r\n", "é".repeat(24), "x".repeat(70));
        let msg = format!(
            "Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n{long}--b1--\r\n"
        );
        let got = convert(msg.as_bytes());
        let delimiters = got.lines().filter(|l| l.starts_with("--b1")).count();
        assert_eq!(delimiters, 2, "{got}");
        assert!(got.lines().all(|l| l.len() <= 76), "{got}");
    }

    #[test]
    fn a_binary_part_keeps_its_length() {
        let got = convert(b"Content-Type: application/octet-stream\r\n\r\n\x00\xff\r\nz\r\n");
        let body = got.split("\r\n\r\n").nth(1).unwrap();
        assert_eq!(body, "=00=FF=0D=0Az\r\n");
    }

    #[test]
    fn an_ascii_part_labelled_8bit_is_relabelled() {
        let msg = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: 8bit\r\n\r\nplain\r\n--b\r\n\r\ncafé\r\n--b--\r\n";
        let got = convert(msg.as_bytes());
        assert!(!got.to_ascii_lowercase().contains(": 8bit"), "{got}");
    }

    #[test]
    fn what_cannot_be_converted_is_refused() {
        for msg in [
            "Subject: Grüße\r\n\r\nbody é\r\n",
            "Content-Transfer-Encoding: base64\r\n\r\n\u{e9}\r\n",
            "Content-Type: message/global\r\n\r\nSubject: x\r\n\r\né\r\n",
            "Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\né\r\n",
        ] {
            assert!(to_7bit(msg.as_bytes()).is_err(), "{msg:?}");
        }
        let mut deep = String::new();
        for _ in 0..40 {
            deep.push_str("Content-Type: message/rfc822\r\n\r\n");
        }
        deep.push_str("\r\né\r\n");
        assert!(to_7bit(deep.as_bytes()).is_err());
    }
}
