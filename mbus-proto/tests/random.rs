//! Property tests on pseudo-random input: the decoder never panics and never claims more bytes
//! than it was given, and random valid frames round-trip, alone and as one chunked stream.

mod common;

use common::with_prefix;
use mbus_proto::{
    AckAction, AckRanges, Batch, BatchBuilder, DEFAULT_MAX_FRAME, DecodeError, ErrorCode, Frame,
    HEADER_LEN, MAX_TOPIC_LEN, Role, Start, decode,
};

/// xorshift64*: deterministic, so a failure reproduces, and small enough to need no crate.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// An integer from a width chosen first, so that every msgpack encoding turns up often.
    fn int(&mut self) -> u64 {
        match self.below(6) {
            0 => self.below(128),
            1 => 128 + self.below(128),
            2 => self.below(1 << 16),
            3 => self.below(1 << 32),
            4 => u64::MAX - self.below(3),
            _ => self.next(),
        }
    }

    /// A length that is usually small and sometimes crosses the bin 8 and bin 16 boundaries.
    fn len(&mut self) -> usize {
        match self.below(20) {
            0 => 250 + self.below(20) as usize,
            1 => 65_530 + self.below(20) as usize,
            _ => self.below(40) as usize,
        }
    }

    /// A valid topic name.
    fn topic(&mut self) -> String {
        const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
        let len = if self.below(10) == 0 {
            1 + self.below(MAX_TOPIC_LEN as u64) as usize
        } else {
            1 + self.below(12) as usize
        };
        (0..len).map(|_| char::from(self.pick(CHARS))).collect()
    }

    /// Any UTF-8 text, not only topic characters.
    fn text(&mut self) -> String {
        let len = self.below(24) as usize;
        (0..len)
            .map(|_| self.pick(&['a', 'Z', '0', ' ', '\n', '\0', 'é', '✓', '😀', '"']))
            .collect()
    }
}

/// Owned field values for one random frame, which borrows them.
struct Parts {
    topic: String,
    text: String,
    data: Vec<u8>,
    a: u64,
    b: u64,
    choice: u64,
    /// A batch of a few messages, some with headers, for the frames that carry one.
    batch: BatchBuilder,
    /// Ack ranges: a few random offsets.
    ranges: Vec<u8>,
}

impl Parts {
    fn random(rng: &mut Rng) -> Parts {
        let len = rng.len();
        let mut batch = BatchBuilder::new();
        for _ in 0..1 + rng.below(4) {
            let len = rng.below(40) as usize;
            let data = rng.bytes(len);
            let name = rng.text();
            let value = rng.bytes(len / 2);
            let headers: Vec<(&str, &[u8])> = (0..rng.below(3))
                .map(|_| (name.as_str(), &value[..]))
                .filter(|(n, _)| !n.is_empty())
                .collect();
            let delta = rng.below(1000) as u32;
            batch.push_at(delta, &data, &headers).unwrap();
        }
        Parts {
            topic: rng.topic(),
            text: rng.text(),
            data: rng.bytes(len),
            a: rng.int(),
            b: rng.int(),
            choice: rng.next(),
            batch,
            ranges: {
                let mut ranges = Vec::new();
                for _ in 0..1 + rng.below(5) {
                    AckRanges::push(&mut ranges, rng.int().min(u64::MAX - 1));
                }
                ranges
            },
        }
    }

    fn frame(&self) -> Frame<'_> {
        let role = if self.choice & 1 == 0 {
            Role::Producer
        } else {
            Role::Consumer
        };
        let start = match (self.choice >> 1) % 5 {
            0 => Start::Earliest,
            1 => Start::Latest,
            2 => Start::Last(self.b),
            3 => Start::Time(self.b),
            _ => Start::Offset(self.a),
        };
        // A batch of one payload, or of several messages with deltas and headers.
        let several = self.choice & 16 == 0;
        let code = ErrorCode::from_u16(self.b as u16);
        match (self.choice >> 8) % 21 {
            0 => Frame::Hello {
                version: mbus_proto::PROTOCOL_VERSION,
                role,
                token: (self.choice & 4 == 0).then_some(self.text.as_str()),
            },
            1 => Frame::Welcome {
                version: mbus_proto::PROTOCOL_VERSION,
                max_frame: self.a as u32,
                idle_timeout: self.b,
            },
            2 => Frame::publish(&self.topic, &self.data),
            3 => Frame::Confirm { count: self.a },
            4 => Frame::Subscribe {
                topic: &self.topic,
                start,
            },
            5 => Frame::Subscribed {
                topic: &self.topic,
                offset: self.a,
                first: self.a.min(self.b),
                next: self.a.max(self.b),
            },
            6 => Frame::Unsubscribe { topic: &self.topic },
            7 => Frame::Deliver {
                topic: &self.topic,
                offset: self.a.min(u64::MAX - 8),
                time: self.b,
                batch: if several {
                    self.batch.batch().expect("at least one message")
                } else {
                    Batch::one(&self.data)
                },
            },
            8 => Frame::Gap {
                topic: &self.topic,
                from: self.a.min(self.b),
                to: self.a.max(self.b),
            },
            9 => Frame::Error {
                code,
                reason: &self.text,
            },
            10 => Frame::Ping,
            11 => Frame::Pong,
            12 => Frame::Join {
                topic: &self.topic,
                group: &self.topic,
                start,
                credit: self.a as u32,
                options: self.options(),
            },
            13 => Frame::Joined {
                topic: &self.topic,
                group: &self.topic,
                floor: self.a,
                next: self.b,
                end: self.b,
                options: self.options(),
            },
            14 => Frame::Leave {
                topic: &self.topic,
                group: &self.topic,
            },
            15 => Frame::Ack {
                topic: &self.topic,
                group: &self.topic,
                action: AckAction::from_u8((self.choice >> 20) as u8 % 4).unwrap(),
                delay: self.b,
                ranges: AckRanges::new(&self.ranges).unwrap(),
            },
            16 => Frame::Assign {
                topic: &self.topic,
                group: &self.topic,
                attempt: self.b as u32,
                first: self.a,
                count: self.b as u32,
            },
            17 => Frame::GroupInfo {
                topic: &self.topic,
                group: &self.topic,
            },
            18 => Frame::Identify {
                producer: &self.topic,
                sequence: self.a,
            },
            19 => Frame::Identified {
                producer: &self.topic,
                sequence: self.b,
            },
            _ => Frame::GroupState {
                topic: &self.topic,
                group: &self.topic,
                state: mbus_proto::GroupStats {
                    exists: self.choice & 32 == 0,
                    members: self.b as u32,
                    floor: self.a,
                    next: self.b,
                    in_flight: self.a,
                    waiting: self.b,
                    redelivered: self.a,
                    dead_lettered: self.b,
                    lost: self.a,
                },
            },
        }
    }

    fn options(&self) -> mbus_proto::GroupOptions<'_> {
        mbus_proto::GroupOptions {
            ack_wait: self.a,
            max_deliver: self.b as u32,
            max_ack_pending: self.a as u32,
            dead_letter: (self.choice & 64 == 0).then_some(self.text.as_str()),
        }
    }
}

/// Asserts what must hold of any decode result, and that a decoded frame survives re-encoding.
fn check_decode(input: &[u8], max: u32) -> Result<Option<usize>, DecodeError> {
    let result = decode(input, max);
    if let Ok(Some((frame, used))) = &result {
        assert!(
            *used <= input.len(),
            "claimed {used} of {} bytes",
            input.len()
        );
        assert!(*used >= HEADER_LEN);
        let prefix = u32::from_be_bytes(input[..HEADER_LEN].try_into().unwrap());
        assert_eq!(*used, HEADER_LEN + prefix as usize);
        // Whatever widths the input used, the frame it meant encodes and decodes to itself.
        let again = frame.to_bytes();
        assert_eq!(decode(&again, u32::MAX), Ok(Some((*frame, again.len()))));
    }
    result.map(|found| found.map(|(_, used)| used))
}

/// How often each outcome turned up, so a test can prove it reached the code it means to test.
#[derive(Default, Debug)]
struct Tally {
    frames: u32,
    incomplete: u32,
    too_large: u32,
    malformed: u32,
    unknown_kind: u32,
    unsupported_version: u32,
}

impl Tally {
    fn add(&mut self, result: Result<Option<usize>, DecodeError>) {
        match result {
            Ok(Some(_)) => self.frames += 1,
            Ok(None) => self.incomplete += 1,
            Err(DecodeError::TooLarge { .. }) => self.too_large += 1,
            Err(DecodeError::Malformed(_)) => self.malformed += 1,
            Err(DecodeError::UnknownKind(_)) => self.unknown_kind += 1,
            Err(DecodeError::UnsupportedVersion(_)) => self.unsupported_version += 1,
        }
    }
}

#[test]
fn random_bytes_never_panic_nor_overclaim() {
    let mut rng = Rng::new(0x6d62_7573);
    let mut tally = Tally::default();
    for _ in 0..50_000 {
        let len = rng.below(48) as usize;
        let mut input = rng.bytes(len);
        // Small prefixes are rare among random bytes; make a quarter of the inputs have one.
        if input.len() >= HEADER_LEN && rng.below(4) == 0 {
            input[..3].fill(0);
        }
        let max = rng.pick(&[0, 16, 1024, DEFAULT_MAX_FRAME, u32::MAX]);
        tally.add(check_decode(&input, max));
    }
    assert!(
        tally.too_large > 0 && tally.incomplete > 0 && tally.malformed > 0,
        "{tally:?}"
    );
}

#[test]
fn random_bodies_behind_a_correct_prefix_never_panic() {
    // Bodies drawn mostly from msgpack's interesting markers reach deep into the parser.
    const MARKERS: &[u8] = &[
        0x00, 0x01, 0x02, 0x03, 0x05, 0x0b, 0x0d, 0x7f, 0x80, 0x90, 0x91, 0x93, 0x9f, 0xa0, 0xa1,
        0xa6, 0xa8, 0xbf, 0xc0, 0xc1, 0xc2, 0xc4, 0xc5, 0xc6, 0xca, 0xcc, 0xcd, 0xce, 0xcf, 0xd0,
        0xd3, 0xd9, 0xdc, 0xdd, 0xde, 0xff,
    ];
    let mut rng = Rng::new(42);
    let mut tally = Tally::default();
    for _ in 0..200_000 {
        let mut body = vec![0x90 | rng.below(6) as u8, rng.below(15) as u8];
        if rng.below(2) == 0 {
            body.push(rng.below(4) as u8); // often a plausible version or small integer
        }
        for _ in 0..rng.below(24) {
            let byte = if rng.below(3) == 0 {
                rng.next() as u8
            } else {
                rng.pick(MARKERS)
            };
            body.push(byte);
        }
        if rng.below(4) == 0 {
            body.truncate(rng.below(body.len() as u64 + 1) as usize);
        }
        tally.add(check_decode(&with_prefix(&body), DEFAULT_MAX_FRAME));
    }
    assert!(
        tally.frames > 0
            && tally.malformed > 0
            && tally.unknown_kind > 0
            && tally.unsupported_version > 0,
        "{tally:?}"
    );
}

#[test]
fn mutated_valid_frames_never_panic() {
    let mut rng = Rng::new(7);
    let samples: Vec<Vec<u8>> = common::every_frame()
        .iter()
        .map(Frame::to_bytes)
        .filter(|b| b.len() < 600)
        .collect();
    let mut tally = Tally::default();
    for _ in 0..50_000 {
        let mut input = samples[rng.below(samples.len() as u64) as usize].clone();
        mutate(&mut rng, &mut input);
        // Half the time, repair the prefix so the body itself is what gets judged.
        if rng.below(2) == 0 && input.len() >= HEADER_LEN {
            let body_len = (input.len() - HEADER_LEN) as u32;
            input[..HEADER_LEN].copy_from_slice(&body_len.to_be_bytes());
        }
        tally.add(check_decode(&input, DEFAULT_MAX_FRAME));
    }
    assert!(
        tally.frames > 0 && tally.malformed > 0 && tally.incomplete > 0,
        "{tally:?}"
    );
}

/// msgpack markers that start a header of another width or type than the one they replace.
const MARKERS: &[u8] = &[
    0x00, 0x7f, 0x90, 0x93, 0x94, 0xa0, 0xa5, 0xc0, 0xc4, 0xc5, 0xc6, 0xcc, 0xcd, 0xce, 0xcf, 0xd0,
    0xd1, 0xd2, 0xd3, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xff,
];

/// Changes, inserts or removes one to three bytes of `input`; a change may write a marker.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(3) {
        if input.is_empty() {
            return;
        }
        let at = rng.below(input.len() as u64) as usize;
        match rng.below(5) {
            0 => input[at] = rng.next() as u8,
            4 => input[at] = rng.pick(MARKERS),
            1 => input[at] ^= 1 << rng.below(8),
            2 => input.insert(at, rng.next() as u8),
            _ => {
                input.remove(at);
            }
        }
    }
}

/// The hand-written `Publish` and `Deliver` decoder agrees with serde on damaged bodies too:
/// whatever one of them reads as a message frame, the other reads the same.
#[test]
fn damaged_message_frames_decode_to_frames_that_round_trip_or_are_refused() {
    let mut rng = Rng::new(11);
    let mut outcomes = [0u32; 2];
    for _ in 0..200_000 {
        let mut parts = Parts::random(&mut rng);
        // Publish or Deliver only.
        parts.choice = (parts.choice & 0xff) | if rng.below(2) == 0 { 2 << 8 } else { 7 << 8 };
        let mut bytes = parts.frame().to_bytes();
        let mut body = bytes.split_off(HEADER_LEN);
        mutate(&mut rng, &mut body);
        let framed = [&(body.len() as u32).to_be_bytes()[..], &body].concat();
        // `check_decode` requires a frame that decodes to encode and decode to itself.
        match check_decode(&framed, u32::MAX) {
            Ok(Some(_)) => outcomes[0] += 1,
            Err(_) => outcomes[1] += 1,
            Ok(None) => unreachable!("the frame is whole"),
        }
    }
    assert!(outcomes[0] > 1_000 && outcomes[1] > 1_000, "{outcomes:?}");
}

#[test]
fn random_valid_frames_round_trip() {
    let mut rng = Rng::new(0xdead_beef);
    let mut kinds = [0u32; 22];
    for _ in 0..20_000 {
        let parts = Parts::random(&mut rng);
        let frame = parts.frame();
        let bytes = frame.to_bytes();
        assert_eq!(
            decode(&bytes, DEFAULT_MAX_FRAME),
            Ok(Some((frame, bytes.len()))),
            "{frame:?}"
        );
        kinds[usize::from(frame.kind())] += 1;
    }
    assert!(
        kinds[1..].iter().all(|&n| n > 0),
        "a kind never came up: {kinds:?}"
    );
}

#[test]
fn random_valid_frames_survive_a_stream_read_in_random_chunks() {
    let mut rng = Rng::new(99);
    let parts: Vec<Parts> = (0..2_000).map(|_| Parts::random(&mut rng)).collect();
    let frames: Vec<Frame<'_>> = parts.iter().map(Parts::frame).collect();
    let mut stream = Vec::new();
    for frame in &frames {
        frame.encode(&mut stream);
    }

    // Feed the stream the way a socket would: arbitrary chunks into a buffer that is drained
    // from the front as frames come out.
    let mut buf = Vec::new();
    let mut fed = 0;
    let mut decoded = 0;
    while fed < stream.len() {
        let chunk = 1 + rng.below(3000) as usize;
        let end = (fed + chunk).min(stream.len());
        buf.extend_from_slice(&stream[fed..end]);
        fed = end;
        let mut at = 0;
        while let Some((frame, used)) = decode(&buf[at..], DEFAULT_MAX_FRAME).unwrap() {
            assert_eq!(frame, frames[decoded]);
            decoded += 1;
            at += used;
        }
        buf.drain(..at);
    }
    assert_eq!(decoded, frames.len());
    assert!(buf.is_empty());
}
