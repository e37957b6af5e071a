//! Chinese substring search with FTS5: texts are indexed as overlapping character
//! bigrams, so a query of two or more characters is a phrase of its bigrams (an
//! exact substring match), and a one-character query is a prefix query.
//! FTS5's built-in trigram tokenizer cannot answer the two-character queries that
//! are most common in Chinese (药店, 超市): see docs/adr/0003-bigram-search.md.

/// Lower-case letters and digits of every script; punctuation and spaces dropped.
fn normalise(text: &str) -> Vec<char> {
    text.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The indexed form of a text: its bigrams, then its last character alone.
pub(crate) fn tokens(text: &str) -> String {
    let chars = normalise(text);
    let mut out = String::with_capacity(chars.len() * 8);
    for pair in chars.windows(2) {
        out.push(pair[0]);
        out.push(pair[1]);
        out.push(' ');
    }
    if let Some(last) = chars.last() {
        out.push(*last);
    }
    out
}

/// The FTS5 query for a user's search text, or `None` if it has no letters or digits.
pub(crate) fn query(text: &str) -> Option<String> {
    let chars = normalise(text);
    match chars.len() {
        0 => None,
        1 => Some(format!("\"{}\" *", chars[0])),
        _ => {
            let grams: Vec<String> = chars.windows(2).map(|p| p.iter().collect()).collect();
            Some(format!("\"{}\"", grams.join(" ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bigrams_then_the_last_character() {
        assert_eq!(tokens("富义街 23号"), "富义 义街 街2 23 3号 号");
        assert_eq!(tokens("店"), "店");
        assert_eq!(tokens(" ，"), "");
    }

    #[test]
    fn queries_are_phrases_of_bigrams() {
        assert_eq!(query("义街2").as_deref(), Some("\"义街 街2\""));
        assert_eq!(query("药").as_deref(), Some("\"药\" *"));
        assert_eq!(query("\"*-"), None);
        assert_eq!(query("KFC").as_deref(), Some("\"kf fc\""));
    }
}
