//! `spiderpool-agent` (being written).

fn main() {
    eprintln!("spiderpool-agent: not yet implemented");
    std::process::exit(2);
}
