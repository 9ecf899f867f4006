//! The answers: plausible, deterministic text for a prompt.
//!
//! The tutorial prompt ("Why do some birds migrate?") gets three real-looking paragraphs about
//! bird migration, in the markdown style Gemini uses. Any other prompt gets a templated answer
//! built from its own words, so different prompts get visibly different answers while the same
//! prompt always gets the same one (tests and benchmarks can compare runs).

/// Words that say nothing about the topic of a prompt.
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "can", "could", "did", "do", "does",
    "for", "from", "give", "had", "has", "have", "how", "i", "in", "is", "it", "its", "me", "my",
    "of", "on", "or", "please", "say", "should", "so", "some", "tell", "that", "the", "their",
    "them", "there", "these", "this", "to", "us", "was", "we", "what", "when", "where", "which",
    "who", "why", "will", "with", "would", "you", "your", "about", "explain", "describe",
];

const BIRDS: &str = "Birds migrate mainly to follow food and good breeding conditions as the seasons change. In spring, the far north offers long days, a sudden boom of insects, fresh plant growth and plenty of nesting space with relatively few predators, so many species fly there to raise their young. When autumn comes, that food supply collapses and the weather turns harsh, so they head back to warmer regions where they can find enough to eat through the winter.

**What drives the journey**

*   **Food:** Insects, nectar, seeds and fish become scarce in winter at high latitudes; moving lets birds track the supply all year.
*   **Breeding:** Long summer days give parents more hours to feed hungry chicks, and less competition means better survival.
*   **Climate:** Avoiding freezing temperatures saves the energy a small body would otherwise burn just to stay warm.

**How they manage it**

Migration is triggered by changing day length, which shifts hormones and prompts birds to fatten up (some nearly double their weight). They navigate using the position of the sun, the pattern of the stars, the Earth's magnetic field, landmarks such as coastlines and mountain ranges, and even smell. Some journeys are astonishing: the Arctic tern travels roughly 70,000 km a year between the Arctic and Antarctica, and the bar-tailed godwit flies over 11,000 km nonstop across the Pacific.

Not every bird migrates, though. Species that can find food year-round, like many crows, tits and woodpeckers, stay put, while others migrate only partly or only in harsh years. In short, migration is a trade-off: the dangers and energy cost of a long flight are worth it when it leads to richer feeding grounds and safer places to breed.
";

/// The answer to `prompt`.
pub fn answer(prompt: &str) -> String {
    let lower = prompt.to_lowercase();
    if lower.contains("bird") && lower.contains("migrat") {
        return BIRDS.to_string();
    }
    templated(prompt)
}

/// A short "thought summary" part, as returned with `thinkingConfig.includeThoughts`.
pub fn thought_summary(prompt: &str) -> String {
    let topic = topic(prompt);
    format!(
        "**Considering {title}**\n\nI'm working out what the question about {topic} is really asking. \
         I'll start from the core idea, then cover the main reasons and a concrete example, and \
         keep the answer clear and well organised.\n\n\n",
        title = title_case(&topic),
    )
}

/// The content words of the prompt, at most four, joined: "rainbows form".
fn topic(prompt: &str) -> String {
    let words: Vec<String> = prompt
        .split(|c: char| !c.is_alphanumeric() && c != '-' && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .take(4)
        .collect();
    if words.is_empty() {
        "your question".to_string()
    } else {
        words.join(" ")
    }
}

fn title_case(text: &str) -> String {
    text.split(' ')
        .map(|w| {
            let mut chars = w.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect()
            })
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// FNV-1a: a stable hash, so the choice of phrasing does not change between Rust versions.
fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn templated(prompt: &str) -> String {
    let topic = topic(prompt);
    let h = stable_hash(prompt);
    let openings = [
        format!(
            "Great question! When it comes to {topic}, the short answer is that a few connected ideas explain most of what is going on."
        ),
        format!(
            "That's a good thing to wonder about. {} comes down to a handful of factors that work together.",
            capitalise(&topic)
        ),
        format!(
            "Here's a clear overview of {topic}, starting with the essentials and then adding the details that matter in practice."
        ),
    ];
    let closings = [
        format!(
            "In short, {topic} makes sense once you see how these pieces fit together. If you'd like, I can go deeper into any one of them."
        ),
        format!(
            "Put simply: understand the basics, look at the main causes, and keep the trade-offs in mind, and {topic} becomes much easier to reason about."
        ),
    ];
    let opening = &openings[(h % openings.len() as u64) as usize];
    let closing = &closings[((h >> 8) % closings.len() as u64) as usize];
    format!(
        "{opening}\n\n**The key points**\n\n\
         *   **The basics:** At its core, {topic} is about how a few simple mechanisms interact. Once those are clear, the rest follows naturally.\n\
         *   **The main causes:** Several factors usually contribute at the same time, and their relative importance depends on the situation.\n\
         *   **Why it matters:** Understanding {topic} helps you predict what will happen next and avoid the most common mistakes.\n\n\
         **An example**\n\n\
         Think of a typical case: the conditions change, the system responds, and the outcome reflects both the starting point and the pressures acting on it. Looking at one concrete example like this is often the quickest way to build intuition.\n\n\
         {closing}\n"
    )
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tutorial_prompt_gets_the_bird_answer() {
        let text = answer("Why do some birds migrate?");
        assert!(text.contains("Arctic tern"));
        assert!(text.split("\n\n").count() >= 3);
        let tokens = crate::tokens::count(&text);
        assert!((250..500).contains(&tokens), "{tokens} tokens");
    }

    #[test]
    fn other_prompts_are_deterministic_and_about_the_prompt() {
        let a = answer("Explain how rainbows form");
        assert_eq!(a, answer("Explain how rainbows form"));
        assert!(a.contains("rainbows form"));
        assert_ne!(a, answer("Why is the sky blue?"));
        assert!(answer("?!").contains("your question"));
    }
}
