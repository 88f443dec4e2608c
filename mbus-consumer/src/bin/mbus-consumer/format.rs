//! `--format` templates, as kcat writes them: `%t` the topic, `%o` the offset, `%T` the time in
//! milliseconds since the Unix epoch, `%h` the headers as `name=value` pairs joined by commas,
//! `%s` the payload, `%S` its size in bytes, `%%` a percent sign, and `\n`, `\t`, `\\` for a newline, a tab and a
//! backslash. Everything else is printed as it is.

use std::io::{self, Write};

use crate::delivered::Delivered;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(Vec<u8>),
    Topic,
    Offset,
    Time,
    Headers,
    Payload,
    PayloadSize,
}

/// A parsed `--format` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Piece>);

impl Template {
    /// Parses a template; an unknown `%` or `\` sequence is an error, so that a typo is not
    /// printed as it is a million times.
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut text = Vec::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            let piece = match (c, chars.clone().next()) {
                ('%', Some(next)) => {
                    chars.next();
                    match next {
                        't' => Piece::Topic,
                        'o' => Piece::Offset,
                        'T' => Piece::Time,
                        'h' => Piece::Headers,
                        's' => Piece::Payload,
                        'S' => Piece::PayloadSize,
                        '%' => {
                            text.push(b'%');
                            continue;
                        }
                        other => {
                            return Err(format!(
                                "unknown `%{other}` in the format; known are %t %o %T %h %s %S %%"
                            ));
                        }
                    }
                }
                ('\\', Some(next)) => {
                    chars.next();
                    text.push(match next {
                        'n' => b'\n',
                        't' => b'\t',
                        '\\' => b'\\',
                        other => {
                            return Err(format!(
                                "unknown `\\{other}` in the format; known are \\n \\t \\\\"
                            ));
                        }
                    });
                    continue;
                }
                ('%' | '\\', None) => {
                    return Err(format!("the format ends in a lone `{c}`"));
                }
                (c, _) => {
                    let mut buf = [0; 4];
                    text.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    continue;
                }
            };
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(piece);
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template(pieces))
    }

    /// Writes one message as the template says.
    pub fn write(&self, out: &mut impl Write, m: &Delivered<'_>) -> io::Result<()> {
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => out.write_all(text)?,
                Piece::Topic => out.write_all(m.topic.as_bytes())?,
                Piece::Offset => write!(out, "{}", m.offset)?,
                Piece::Time => write!(out, "{}", m.time)?,
                Piece::Headers => {
                    for (i, (name, value)) in m.headers.iter().enumerate() {
                        if i > 0 {
                            out.write_all(b",")?;
                        }
                        out.write_all(name.as_bytes())?;
                        out.write_all(b"=")?;
                        out.write_all(value)?;
                    }
                }
                Piece::Payload => out.write_all(m.data)?,
                Piece::PayloadSize => write!(out, "{}", m.data.len())?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(template: &str) -> String {
        let mut builder = mbus_proto::BatchBuilder::new();
        let headers: [(&str, &[u8]); 2] = [("a", b"1"), ("b", b"2")];
        builder.push(b"hi", &headers).unwrap();
        let batch = builder.batch().unwrap();
        let m = Delivered {
            topic: "orders",
            offset: 42,
            time: 1_796_205_600_000,
            headers: batch.split_first().0.headers,
            data: b"hi",
        };
        let mut out = Vec::new();
        Template::parse(template)
            .unwrap()
            .write(&mut out, &m)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn each_sequence_prints_its_part() {
        assert_eq!(
            render("%t [%o] %s (%S bytes)\\n"),
            "orders [42] hi (2 bytes)\n"
        );
        assert_eq!(render("100%% %s\\t\\\\é"), "100% hi\t\\é");
        assert_eq!(render("%T %h"), "1796205600000 a=1,b=2");
        assert_eq!(render(""), "");
    }

    #[test]
    fn unknown_sequences_are_refused() {
        for bad in ["%k", "\\x", "end %", "end \\"] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }
}
