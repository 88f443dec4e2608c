//! How the `mbus-consumer` command prints a message: its payload as a line, a JSON object, or
//! as a `--format` template says.

use std::io::{self, BufWriter, Write};

use base64::display::Base64Display;
use base64::engine::general_purpose::STANDARD;
use serde::ser::{Serialize, SerializeStruct, Serializer};

use crate::format::Template;

/// How each message is printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Style {
    /// The payload and a newline.
    Plain,
    /// One JSON object per line.
    Json,
    /// A `--format` template, exactly as it says (newline included, if it has one).
    Format(Template),
}

/// Buffered stdout, flushed by the caller when no more messages are at hand.
pub struct Output<W: Write> {
    out: BufWriter<W>,
    style: Style,
}

impl<W: Write> Output<W> {
    pub fn new(out: W, style: Style) -> Self {
        Output {
            out: BufWriter::with_capacity(64 * 1024, out),
            style,
        }
    }

    /// Writes one message.
    pub fn message(&mut self, topic: &str, offset: u64, data: &[u8]) -> io::Result<()> {
        match &self.style {
            Style::Plain => {
                self.out.write_all(data)?;
                self.out.write_all(b"\n")
            }
            Style::Json => {
                let message = JsonMessage {
                    topic,
                    offset,
                    data,
                };
                serde_json::to_writer(&mut self.out, &message)?;
                self.out.write_all(b"\n")
            }
            Style::Format(template) => template.write(&mut self.out, topic, offset, data),
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// `{"topic":...,"offset":...,"data":"..."}`, with `data_base64` instead of `data` when the
/// payload is not UTF-8. Serialized field by field, so that nothing is allocated per message.
struct JsonMessage<'a> {
    topic: &'a str,
    offset: u64,
    data: &'a [u8],
}

impl Serialize for JsonMessage<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut object = s.serialize_struct("Message", 3)?;
        object.serialize_field("topic", self.topic)?;
        object.serialize_field("offset", &self.offset)?;
        match std::str::from_utf8(self.data) {
            Ok(text) => object.serialize_field("data", text)?,
            Err(_) => object.serialize_field("data_base64", &Base64(self.data))?,
        }
        object.end()
    }
}

struct Base64<'a>(&'a [u8]);

impl Serialize for Base64<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&Base64Display::new(self.0, &STANDARD))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printed(json: bool, data: &[u8]) -> String {
        let style = if json { Style::Json } else { Style::Plain };
        let mut output = Output::new(Vec::new(), style);
        output.message("orders", 7, data).unwrap();
        String::from_utf8(output.out.into_inner().unwrap()).unwrap()
    }

    #[test]
    fn plain_output_is_the_payload_and_a_newline() {
        assert_eq!(
            printed(false, b"look ma! a new order"),
            "look ma! a new order\n"
        );
    }

    #[test]
    fn json_carries_utf8_payloads_as_text() {
        assert_eq!(
            printed(true, "h\u{e9} \"quoted\"".as_bytes()),
            "{\"topic\":\"orders\",\"offset\":7,\"data\":\"h\u{e9} \\\"quoted\\\"\"}\n"
        );
    }

    #[test]
    fn json_carries_other_payloads_as_base64() {
        assert_eq!(
            printed(true, &[0xff, 0x00, 0x01]),
            "{\"topic\":\"orders\",\"offset\":7,\"data_base64\":\"/wAB\"}\n"
        );
    }

    #[test]
    fn json_lines_parse_back() {
        let line = printed(true, b"");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["data"], "");
        assert_eq!(value["offset"], 7);
    }
}
