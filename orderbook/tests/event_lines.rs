//! `Event::from_json` reads each line's header and then the kind's own
//! fields. These tests hold it to what serde's derived reading of the same
//! line (a tagged enum flattened beside `schema_version`, as `from_json`
//! was before) gives: the same event for every line a random flow writes,
//! for those lines in the older schemas' shape, and an error for every
//! damaged line that one refuses.

use std::collections::HashMap;

use orderbook::sim::{Flow, Rng};
use orderbook::*;
use serde::Deserialize;

/// The derived reading, as the reference.
#[derive(Deserialize)]
struct Versioned {
    schema_version: u32,
    #[serde(flatten)]
    event: Event,
}

fn derived(json: &str) -> Option<Event> {
    let v: Versioned = serde_json::from_str(json).ok()?;
    (v.schema_version <= SCHEMA_VERSION).then_some(v.event)
}

/// Every event of a random flow with stops over the default markets.
fn events(seed: u64, commands: usize) -> Vec<Event> {
    let markets = Market::defaults();
    let mut books: HashMap<Symbol, Book> = markets
        .iter()
        .map(|m| (m.symbol, Book::new(m.clone())))
        .collect();
    let mut flow = Flow::new(seed, markets).with_stops(true);
    let mut all = Vec::new();
    for _ in 0..commands {
        let command = flow.next_command();
        let book = books
            .get_mut(command.symbol())
            .expect("a market of the flow");
        book.execute_into(&command, &mut all);
    }
    all
}

#[test]
fn every_line_of_a_flow_reads_as_the_derived_reading_reads_it() {
    let events = events(7, 20_000);
    let mut kinds = HashMap::new();
    for event in &events {
        let line = event.to_json();
        assert_eq!(Event::from_json(&line).unwrap(), *event, "{line}");
        assert_eq!(derived(&line).as_ref(), Some(event), "{line}");
        *kinds.entry(event.kind()).or_insert(0) += 1;
    }
    // The flow reaches every kind a book writes: all but a fencing event
    // and a refusal, which the exchange writes (`rules.rs` reads those
    // back).
    assert_eq!(kinds.len(), 8, "{kinds:?}");
}

#[test]
fn older_and_damaged_lines_read_as_the_derived_reading_reads_them() {
    let mut rng = Rng::new(11);
    let lines: Vec<String> = events(3, 3_000).iter().map(Event::to_json).collect();
    let mut compared = 0;
    for line in &lines {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        let fields: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        let mut variants = vec![
            // An older schema's version (the fields an older schema lacks
            // are left out below, one at a time).
            line.replace(
                &format!("\"schema_version\":{SCHEMA_VERSION}"),
                "\"schema_version\":1",
            ),
            // A newer one.
            line.replace(
                &format!("\"schema_version\":{SCHEMA_VERSION}"),
                "\"schema_version\":99",
            ),
            // Cut short.
            line[..rng.below(line.len() as u64) as usize].to_string(),
            // A field the reader does not know.
            line.replacen('{', "{\"later\":[1,{\"a\":null}],", 1),
            // Not an object.
            "[1,2]".to_string(),
            // The kind escaped, as any JSON writer may.
            line.replacen("\"type\":\"", "\"type\":\"\\u004f", 1)
                .replacen("\\u004fO", "\\u004f", 1),
        ];
        // Each field left out in turn, and each given the wrong type.
        for field in &fields {
            let mut without = value.clone();
            without.as_object_mut().unwrap().remove(field);
            variants.push(without.to_string());
            let mut wrong = value.clone();
            wrong[field.as_str()] = serde_json::json!({"no": true});
            variants.push(wrong.to_string());
        }
        // The kind renamed to one that does not exist.
        let mut unknown = value.clone();
        unknown["type"] = serde_json::json!("OrderTeleported");
        variants.push(unknown.to_string());
        for variant in variants {
            let ours = Event::from_json(&variant).ok();
            assert_eq!(ours, derived(&variant), "{variant}");
            compared += 1;
        }
    }
    assert!(compared > 30_000, "{compared}");
}
