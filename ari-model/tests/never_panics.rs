//! Whatever arrives on the events socket, decoding returns a value or an error and never
//! panics: random bytes, captured events with random bytes changed or cut, and random
//! JSON trees under every known event type.

use ari_model::Event;
use serde_json::{Map, Value, json};

fn random_json(rng: &mut fastrand::Rng, depth: u32) -> Value {
    match rng.u8(..if depth > 3 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => json!(rng.bool()),
        2 => json!(rng.i64(..)),
        3 => json!(rng.f64() * 1e12),
        4 => json!(
            (0..rng.usize(..12))
                .map(|_| rng.char(..))
                .collect::<String>()
        ),
        5 => Value::Array(
            (0..rng.usize(..4))
                .map(|_| random_json(rng, depth + 1))
                .collect(),
        ),
        _ => {
            let keys = [
                "id",
                "channel",
                "bridge",
                "name",
                "state",
                "caller",
                "peer",
                "cause",
                "playback",
                "recording",
                "timestamp",
                "application",
                "args",
                "digit",
            ];
            let mut map = Map::new();
            for _ in 0..rng.usize(..6) {
                map.insert(
                    keys[rng.usize(..keys.len())].to_owned(),
                    random_json(rng, depth + 1),
                );
            }
            Value::Object(map)
        }
    }
}

#[test]
fn arbitrary_input_never_panics_the_decoder() {
    // Read at run time (cargo sets it) so a shared target directory never points at
    // another clone's files.
    let dir = std::env::var_os("CARGO_MANIFEST_DIR").unwrap();
    let fixtures =
        std::fs::read_to_string(std::path::Path::new(&dir).join("tests/fixtures/events.jsonl"))
            .unwrap();
    let fixtures: Vec<&str> = fixtures.lines().collect();
    let mut rng = fastrand::Rng::with_seed(0x00A5_7E21);
    let (mut decoded, mut unknown, mut errors) = (0_u32, 0_u32, 0_u32);
    for round in 0..60_000 {
        let text = match round % 4 {
            0 => (0..rng.usize(..300))
                .map(|_| rng.char(..))
                .collect::<String>(),
            1 => {
                let mut bytes = fixtures[rng.usize(..fixtures.len())].as_bytes().to_vec();
                for _ in 0..rng.usize(1..6) {
                    let at = rng.usize(..bytes.len());
                    bytes[at] = rng.u8(..);
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }
            2 => {
                let line = fixtures[rng.usize(..fixtures.len())];
                line.get(..rng.usize(..line.len()))
                    .unwrap_or(line)
                    .to_owned()
            }
            _ => {
                let mut value = random_json(&mut rng, 0);
                if let Value::Object(map) = &mut value {
                    map.insert(
                        "type".into(),
                        json!(Event::KNOWN_KINDS[rng.usize(..Event::KNOWN_KINDS.len())]),
                    );
                }
                value.to_string()
            }
        };
        match Event::from_json_str(&text) {
            Ok(event) if event.is_unknown() => unknown += 1,
            Ok(event) => {
                // Accessors of whatever decoded work too.
                let _ = (
                    event.kind(),
                    event.channel_ids(),
                    event.bridge_ids(),
                    event.application(),
                    event.timestamp(),
                );
                decoded += 1;
            }
            Err(error) => {
                assert!(!error.to_string().is_empty());
                errors += 1;
            }
        }
        let _ = serde_json::from_str::<Event>(&text);
    }
    println!("60000 inputs: {decoded} decoded, {unknown} unknown, {errors} errors");
    assert!(
        errors > 10_000 && decoded > 100,
        "the inputs should cover both outcomes"
    );
}
