//! `spiderpoolctl`: the operator's CLI (offline commands; see the README).

fn main() {
    println!("spiderpoolctl: not yet implemented");
}
