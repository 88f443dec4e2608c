//! How the `mbus-consumer` command prints a message: its payload as a line, a JSON object, or
//! as a `--format` template says.

use std::io::{self, BufWriter, Write};

use base64::display::Base64Display;
use base64::engine::general_purpose::STANDARD;
use mbus_consumer::Headers;
use serde::ser::{Serialize, SerializeSeq, SerializeStruct, Serializer};

use crate::delivered::Delivered;
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
    pub fn message(&mut self, m: &Delivered<'_>) -> io::Result<()> {
        match &self.style {
            Style::Plain => {
                self.out.write_all(m.data)?;
                self.out.write_all(b"\n")
            }
            Style::Json => {
                serde_json::to_writer(&mut self.out, &JsonMessage(m))?;
                self.out.write_all(b"\n")
            }
            Style::Format(template) => template.write(&mut self.out, m),
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// `{"topic":...,"offset":...,"time":...,"headers":[...],"data":"..."}`, with `data_base64`
/// instead of `data` when the payload is not UTF-8, and `headers` only when there are some,
/// each `{"name":...,"value":...}` (or `value_base64`). Serialized field by field, so that
/// nothing is allocated per message.
struct JsonMessage<'a, 'm>(&'a Delivered<'m>);

impl Serialize for JsonMessage<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.0;
        let mut object = s.serialize_struct("Message", 5)?;
        object.serialize_field("topic", m.topic)?;
        object.serialize_field("offset", &m.offset)?;
        object.serialize_field("time", &m.time)?;
        if !m.headers.is_empty() {
            object.serialize_field("headers", &JsonHeaders(m.headers))?;
        }
        match std::str::from_utf8(m.data) {
            Ok(text) => object.serialize_field("data", text)?,
            Err(_) => object.serialize_field("data_base64", &Base64(m.data))?,
        }
        object.end()
    }
}

struct JsonHeaders<'a>(Headers<'a>);

impl Serialize for JsonHeaders<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut list = s.serialize_seq(Some(self.0.len()))?;
        for (name, value) in self.0.iter() {
            list.serialize_element(&JsonHeader(name, value))?;
        }
        list.end()
    }
}

struct JsonHeader<'a>(&'a str, &'a [u8]);

impl Serialize for JsonHeader<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut object = s.serialize_struct("Header", 2)?;
        object.serialize_field("name", self.0)?;
        match std::str::from_utf8(self.1) {
            Ok(text) => object.serialize_field("value", text)?,
            Err(_) => object.serialize_field("value_base64", &Base64(self.1))?,
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
        printed_with(json, data, Headers::default())
    }

    fn printed_with(json: bool, data: &[u8], headers: Headers<'_>) -> String {
        let style = if json { Style::Json } else { Style::Plain };
        let mut output = Output::new(Vec::new(), style);
        let m = Delivered {
            topic: "orders",
            offset: 7,
            time: 1_764_633_600_000,
            headers,
            data,
        };
        output.message(&m).unwrap();
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
            "{\"topic\":\"orders\",\"offset\":7,\"time\":1764633600000,\"data\":\"h\u{e9} \\\"quoted\\\"\"}\n"
        );
    }

    #[test]
    fn json_carries_other_payloads_as_base64() {
        assert_eq!(
            printed(true, &[0xff, 0x00, 0x01]),
            "{\"topic\":\"orders\",\"offset\":7,\"time\":1764633600000,\"data_base64\":\"/wAB\"}\n"
        );
    }

    #[test]
    fn json_carries_headers_in_order_with_binary_values_as_base64() {
        let mut builder = mbus_proto::BatchBuilder::new();
        let headers: [(&str, &[u8]); 3] = [("trace", b"abc"), ("bin", &[0xff]), ("trace", b"d")];
        builder.push(b"x", &headers).unwrap();
        let batch = builder.batch().unwrap();
        let (m, _) = batch.split_first();
        let line = printed_with(true, b"x", m.headers);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            value["headers"],
            serde_json::json!([
                {"name": "trace", "value": "abc"},
                {"name": "bin", "value_base64": "/w=="},
                {"name": "trace", "value": "d"},
            ])
        );
        assert!(!printed(true, b"x").contains("headers"), "none, no field");
    }

    #[test]
    fn json_lines_parse_back() {
        let line = printed(true, b"");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["data"], "");
        assert_eq!(value["offset"], 7);
    }
}
