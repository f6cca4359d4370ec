//! `PrivateControlPlane`: a test's own apiserver, separate from the shared one, gone on drop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use spiderpool_k8s::testing::{PrivateControlPlane, TestCluster};

#[test]
#[ignore = "needs apiserver"]
fn k8s_private_control_plane_is_separate_and_stops_on_drop() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let plane = PrivateControlPlane::start().expect("private control plane");
    let port = plane.port;
    let mine = rt
        .block_on(TestCluster::on(&plane, "private"))
        .expect("cluster");
    let shared = rt
        .block_on(TestCluster::new("shared"))
        .expect("shared cluster");
    let in_shared: Api<Namespace> = Api::all(shared.client.clone());
    assert!(
        rt.block_on(in_shared.get_opt(&mine.namespace))
            .expect("get")
            .is_none(),
        "the private namespace is not in the shared apiserver"
    );
    let in_mine: Api<Namespace> = Api::all(mine.client.clone());
    assert!(
        rt.block_on(in_mine.get_opt(&mine.namespace))
            .expect("get")
            .is_some()
    );
    let dir = plane.dir().to_path_buf();
    drop(plane);
    assert!(!dir.exists(), "its directory is removed");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens on its port any more"
    );
}
