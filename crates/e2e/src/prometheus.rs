//! Reading a Prometheus text exposition in tests: samples with their labels and the declared
//! type of each family.

use std::collections::{BTreeMap, HashMap};

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series name (`_bucket`, `_sum`, `_count` suffixes included).
    pub name: String,
    /// Label names to values.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// The value of label `key` (empty when absent).
    pub fn label(&self, key: &str) -> &str {
        self.labels.get(key).map_or("", String::as_str)
    }
}

/// A parsed exposition.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    /// Every sample, in order.
    pub samples: Vec<Sample>,
    /// `# TYPE` of each family.
    pub types: HashMap<String, String>,
}

impl Exposition {
    /// Parses the text format (panics on a line it cannot read: the exporter wrote it).
    pub fn parse(text: &str) -> Self {
        let mut exposition = Self::default();
        for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
            if let Some(declaration) = line.strip_prefix("# TYPE ") {
                let (family, kind) = declaration
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("a TYPE line names a family and a type: {line}"));
                exposition.types.insert(family.to_owned(), kind.to_owned());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            exposition.samples.push(parse_sample(line));
        }
        exposition
    }

    /// The samples of series `name` whose labels include every pair of `labels`.
    pub fn find<'a>(&'a self, name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
        self.samples
            .iter()
            .filter(|sample| sample.name == name)
            .filter(|sample| {
                labels
                    .iter()
                    .all(|(key, value)| sample.label(key) == *value)
            })
            .collect()
    }

    /// The sum of the matching samples' values.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels)
            .iter()
            .map(|sample| sample.value)
            .sum()
    }
}

fn parse_sample(line: &str) -> Sample {
    let (series, value) = line
        .rsplit_once(' ')
        .unwrap_or_else(|| panic!("a sample has a value: {line}"));
    let value: f64 = value
        .parse()
        .unwrap_or_else(|_| panic!("a numeric sample value: {line}"));
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (
            name,
            parse_labels(
                rest.strip_suffix('}')
                    .unwrap_or_else(|| panic!("labels end with a brace: {line}")),
            ),
        ),
        None => (series, BTreeMap::new()),
    };
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}

/// `a="x",b="y \"quoted\""`.
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("a label is key=\"value\": {text}"));
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((index, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(match escaped {
                            'n' => '\n',
                            other => other,
                        });
                    }
                }
                '"' => {
                    end = index + 1;
                    break;
                }
                other => value.push(other),
            }
        }
        labels.insert(key.trim_start_matches(',').to_owned(), value);
        rest = after[end..].trim_start_matches(',');
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_and_types_are_read() {
        let text = "# HELP x_total help\n# TYPE x_total counter\nx_total{a=\"1\",b=\"q\\\"x\"} 3\nplain 0.5\n";
        let parsed = Exposition::parse(text);
        assert_eq!(parsed.types["x_total"], "counter");
        assert_eq!(parsed.sum("x_total", &[("a", "1")]), 3.0);
        assert_eq!(parsed.find("x_total", &[])[0].label("b"), "q\"x");
        assert_eq!(parsed.sum("plain", &[]), 0.5);
    }
}
