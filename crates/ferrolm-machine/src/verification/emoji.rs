//! The specification's 64 SAS emoji ("SAS method: emoji"), by index, with their English names.
//!
//! The code points are written as escapes so that the table reads the same in every editor;
//! the names are the spec's (translations are the app's business).

/// One SAS emoji: the character(s) to show and the specification's name for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Emoji {
    /// The emoji (one code point, or one followed by U+FE0F VARIATION SELECTOR-16).
    pub symbol: &'static str,
    /// Its English name in the specification's table.
    pub name: &'static str,
}

/// The table, indexed by the 6-bit numbers a SAS produces.
pub const EMOJI: [Emoji; 64] = [
    Emoji { symbol: "\u{1F436}", name: "Dog" },              // 0 U+1F436
    Emoji { symbol: "\u{1F431}", name: "Cat" },              // 1 U+1F431
    Emoji { symbol: "\u{1F981}", name: "Lion" },             // 2 U+1F981
    Emoji { symbol: "\u{1F40E}", name: "Horse" },            // 3 U+1F40E
    Emoji { symbol: "\u{1F984}", name: "Unicorn" },          // 4 U+1F984
    Emoji { symbol: "\u{1F437}", name: "Pig" },              // 5 U+1F437
    Emoji { symbol: "\u{1F418}", name: "Elephant" },         // 6 U+1F418
    Emoji { symbol: "\u{1F430}", name: "Rabbit" },           // 7 U+1F430
    Emoji { symbol: "\u{1F43C}", name: "Panda" },            // 8 U+1F43C
    Emoji { symbol: "\u{1F413}", name: "Rooster" },          // 9 U+1F413
    Emoji { symbol: "\u{1F427}", name: "Penguin" },          // 10 U+1F427
    Emoji { symbol: "\u{1F422}", name: "Turtle" },           // 11 U+1F422
    Emoji { symbol: "\u{1F41F}", name: "Fish" },             // 12 U+1F41F
    Emoji { symbol: "\u{1F419}", name: "Octopus" },          // 13 U+1F419
    Emoji { symbol: "\u{1F98B}", name: "Butterfly" },        // 14 U+1F98B
    Emoji { symbol: "\u{1F337}", name: "Flower" },           // 15 U+1F337
    Emoji { symbol: "\u{1F333}", name: "Tree" },             // 16 U+1F333
    Emoji { symbol: "\u{1F335}", name: "Cactus" },           // 17 U+1F335
    Emoji { symbol: "\u{1F344}", name: "Mushroom" },         // 18 U+1F344
    Emoji { symbol: "\u{1F30F}", name: "Globe" },            // 19 U+1F30F
    Emoji { symbol: "\u{1F319}", name: "Moon" },             // 20 U+1F319
    Emoji { symbol: "\u{2601}\u{FE0F}", name: "Cloud" },     // 21 U+2601 U+FE0F
    Emoji { symbol: "\u{1F525}", name: "Fire" },             // 22 U+1F525
    Emoji { symbol: "\u{1F34C}", name: "Banana" },           // 23 U+1F34C
    Emoji { symbol: "\u{1F34E}", name: "Apple" },            // 24 U+1F34E
    Emoji { symbol: "\u{1F353}", name: "Strawberry" },       // 25 U+1F353
    Emoji { symbol: "\u{1F33D}", name: "Corn" },             // 26 U+1F33D
    Emoji { symbol: "\u{1F355}", name: "Pizza" },            // 27 U+1F355
    Emoji { symbol: "\u{1F382}", name: "Cake" },             // 28 U+1F382
    Emoji { symbol: "\u{2764}\u{FE0F}", name: "Heart" },     // 29 U+2764 U+FE0F
    Emoji { symbol: "\u{1F600}", name: "Smiley" },           // 30 U+1F600
    Emoji { symbol: "\u{1F916}", name: "Robot" },            // 31 U+1F916
    Emoji { symbol: "\u{1F3A9}", name: "Hat" },              // 32 U+1F3A9
    Emoji { symbol: "\u{1F453}", name: "Glasses" },          // 33 U+1F453
    Emoji { symbol: "\u{1F527}", name: "Spanner" },          // 34 U+1F527
    Emoji { symbol: "\u{1F385}", name: "Santa" },            // 35 U+1F385
    Emoji { symbol: "\u{1F44D}", name: "Thumbs Up" },        // 36 U+1F44D
    Emoji { symbol: "\u{2602}\u{FE0F}", name: "Umbrella" },  // 37 U+2602 U+FE0F
    Emoji { symbol: "\u{231B}", name: "Hourglass" },         // 38 U+231B
    Emoji { symbol: "\u{23F0}", name: "Clock" },             // 39 U+23F0
    Emoji { symbol: "\u{1F381}", name: "Gift" },             // 40 U+1F381
    Emoji { symbol: "\u{1F4A1}", name: "Light Bulb" },       // 41 U+1F4A1
    Emoji { symbol: "\u{1F4D5}", name: "Book" },             // 42 U+1F4D5
    Emoji { symbol: "\u{270F}\u{FE0F}", name: "Pencil" },    // 43 U+270F U+FE0F
    Emoji { symbol: "\u{1F4CE}", name: "Paperclip" },        // 44 U+1F4CE
    Emoji { symbol: "\u{2702}\u{FE0F}", name: "Scissors" },  // 45 U+2702 U+FE0F
    Emoji { symbol: "\u{1F512}", name: "Lock" },             // 46 U+1F512
    Emoji { symbol: "\u{1F511}", name: "Key" },              // 47 U+1F511
    Emoji { symbol: "\u{1F528}", name: "Hammer" },           // 48 U+1F528
    Emoji { symbol: "\u{260E}\u{FE0F}", name: "Telephone" }, // 49 U+260E U+FE0F
    Emoji { symbol: "\u{1F3C1}", name: "Flag" },             // 50 U+1F3C1
    Emoji { symbol: "\u{1F682}", name: "Train" },            // 51 U+1F682
    Emoji { symbol: "\u{1F6B2}", name: "Bicycle" },          // 52 U+1F6B2
    Emoji { symbol: "\u{2708}\u{FE0F}", name: "Aeroplane" }, // 53 U+2708 U+FE0F
    Emoji { symbol: "\u{1F680}", name: "Rocket" },           // 54 U+1F680
    Emoji { symbol: "\u{1F3C6}", name: "Trophy" },           // 55 U+1F3C6
    Emoji { symbol: "\u{26BD}", name: "Ball" },              // 56 U+26BD
    Emoji { symbol: "\u{1F3B8}", name: "Guitar" },           // 57 U+1F3B8
    Emoji { symbol: "\u{1F3BA}", name: "Trumpet" },          // 58 U+1F3BA
    Emoji { symbol: "\u{1F514}", name: "Bell" },             // 59 U+1F514
    Emoji { symbol: "\u{2693}", name: "Anchor" },            // 60 U+2693
    Emoji { symbol: "\u{1F3A7}", name: "Headphones" },       // 61 U+1F3A7
    Emoji { symbol: "\u{1F4C1}", name: "Folder" },           // 62 U+1F4C1
    Emoji { symbol: "\u{1F4CC}", name: "Pin" },              // 63 U+1F4CC
];

/// The emoji of a 6-bit index (`None` above 63).
pub fn emoji(index: u8) -> Option<Emoji> {
    EMOJI.get(usize::from(index)).copied()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn the_table_has_the_spec_entries_at_their_indices() {
        assert_eq!(EMOJI[0], Emoji { symbol: "\u{1F436}", name: "Dog" });
        assert_eq!(EMOJI[21], Emoji { symbol: "\u{2601}\u{FE0F}", name: "Cloud" });
        assert_eq!(EMOJI[36].name, "Thumbs Up");
        assert_eq!(EMOJI[63], Emoji { symbol: "\u{1F4CC}", name: "Pin" });
        assert_eq!(emoji(64), None);
        let mut names: Vec<_> = EMOJI.iter().map(|e| e.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 64, "names are unique");
    }
}
