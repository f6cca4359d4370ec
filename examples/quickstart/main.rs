//! The seed's Calico quick start (offline half for now).

fn main() {
    println!("quickstart: not yet implemented");
}
