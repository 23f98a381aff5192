//! The canonical writer: property test that printing a model and parsing the text gives
//! the same model back, and that canonical text is printed back byte for byte.

use proptest::prelude::*;
use roboconf_model::dsl::{
    self, writer, Block, FileDef, Holder, HolderKind, Import, Limits, Property, Span,
};
use std::path::Path;

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z_][A-Za-z0-9_.-]{0,8}"
}

fn value() -> impl Strategy<Value = String> {
    // Values: no `;`, `#` or line break, not starting with a blank (the parser skips
    // blanks after the colon); trailing blanks are kept, as in Roboconf.
    "[A-Za-z0-9_\"/][A-Za-z0-9_.,=\"/ -]{0,12}"
}

fn property() -> impl Strategy<Value = Block> {
    (name(), value()).prop_map(|(name, value)| {
        Block::Property(Property {
            name,
            value,
            span: Span::default(),
            value_col: 0,
            inline_comment: String::new(),
        })
    })
}

fn trivia() -> impl Strategy<Value = Block> {
    prop_oneof![
        Just(Block::Blank(String::new())),
        "\t?# [a-z ]{0,10}".prop_map(Block::Comment)
    ]
}

fn instance(depth: u32) -> BoxedStrategy<Block> {
    let inner = if depth == 0 {
        prop_oneof![property(), trivia()].boxed()
    } else {
        prop_oneof![3 => property(), 1 => trivia(), 1 => instance(depth - 1)].boxed()
    };
    (name(), prop::collection::vec(inner, 0..5))
        .prop_map(|(name, blocks)| {
            Block::Holder(Holder {
                kind: HolderKind::Instance,
                name,
                span: Span::default(),
                inline_comment: String::new(),
                closing_inline_comment: String::new(),
                blocks,
            })
        })
        .boxed()
}

fn graph_holder() -> impl Strategy<Value = Block> {
    (
        prop_oneof![Just(HolderKind::Component), Just(HolderKind::Facet)],
        name(),
        prop::collection::vec(prop_oneof![3 => property(), 1 => trivia()], 0..6),
    )
        .prop_map(|(kind, name, blocks)| {
            Block::Holder(Holder {
                kind,
                name,
                span: Span::default(),
                inline_comment: String::new(),
                closing_inline_comment: String::new(),
                blocks,
            })
        })
}

fn import() -> impl Strategy<Value = Block> {
    "[a-z]{1,8}\\.graph".prop_map(|uri| {
        Block::Import(Import {
            uri,
            span: Span::default(),
            inline_comment: String::new(),
        })
    })
}

/// Forgets where things were, to compare models.
fn strip(blocks: &[Block]) -> Vec<Block> {
    blocks
        .iter()
        .map(|b| match b {
            Block::Holder(h) => Block::Holder(Holder {
                span: Span::default(),
                blocks: strip(&h.blocks),
                ..h.clone()
            }),
            Block::Property(p) => Block::Property(Property {
                span: Span::default(),
                value_col: 0,
                ..p.clone()
            }),
            Block::Import(i) => Block::Import(Import {
                span: Span::default(),
                ..i.clone()
            }),
            other => other.clone(),
        })
        .collect()
}

fn model(top: Vec<Block>) -> FileDef {
    let mut blocks = top;
    // Blank lines at the very end are not all kept (as in Roboconf): end on something.
    if matches!(blocks.last(), Some(Block::Blank(_))) {
        blocks.push(Block::Comment("# end".into()));
    }
    // A file that ends with a line break reads back with a final empty blank.
    blocks.push(Block::Blank(String::new()));
    FileDef {
        path: "p".into(),
        kind: dsl::FileKind::Graph,
        blocks,
        errors: Vec::new(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn print_then_parse_gives_the_same_graph(top in prop::collection::vec(prop_oneof![2 => graph_holder(), 1 => import(), 1 => trivia()], 1..6)) {
        let m = model(top);
        let text = writer::write_file(&m);
        let back = dsl::parse_str(Path::new("p.graph"), &text, Limits::default());
        prop_assert!(back.errors.iter().all(|e| !e.is_error()), "{:?}\n{}", back.errors, text);
        prop_assert_eq!(strip(&back.blocks), strip(&m.blocks), "{}", text);
        prop_assert_eq!(writer::write_file(&back), text);
    }

    #[test]
    fn print_then_parse_gives_the_same_instances(top in prop::collection::vec(prop_oneof![3 => instance(3), 1 => trivia()], 1..5)) {
        let m = model(top);
        let text = writer::write_file(&m);
        let back = dsl::parse_str(Path::new("p.instances"), &text, Limits::default());
        prop_assert!(back.errors.iter().all(|e| !e.is_error()), "{:?}\n{}", back.errors, text);
        prop_assert_eq!(strip(&back.blocks), strip(&m.blocks), "{}", text);
    }
}
