//! Baselines that the criterion benches compare our implementations against.
