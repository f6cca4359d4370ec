//! Spiderpool on Kubernetes: CRDs, the Kubernetes allocation store, controllers and webhooks.
//!
//! Not yet implemented: a later issue builds it on `kube` and `tokio`. Kept free of those
//! dependencies until then so the workspace builds fast.
