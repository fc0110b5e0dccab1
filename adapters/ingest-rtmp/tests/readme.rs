//! The README's complete example is `examples/monitor.rs`, compiled with the crate.

#[test]
fn the_readme_example_is_the_compiled_one() {
    let readme = include_str!("../README.md");
    let example = include_str!("../examples/monitor.rs");
    let start = readme.find("```rust\n").expect("a rust block") + "```rust\n".len();
    let end = start + readme[start..].find("```\n").expect("its end");
    let code = example.splitn(4, '\n').nth(3).expect("the example's code");
    assert_eq!(&readme[start..end], code);
}
