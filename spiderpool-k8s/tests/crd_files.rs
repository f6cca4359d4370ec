//! The CRDs committed under `charts/spiderpool/crds/` are exactly what the Rust types
//! generate, and a real kube-apiserver accepts them.
//!
//! After changing a CRD type: `UPDATE_CRDS=1 cargo test -p spiderpool-k8s --test crd_files`.

use std::path::PathBuf;

use spiderpool_k8s::crds::crd_files;

fn crd_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/spiderpool/crds")
}

#[test]
fn k8s_crd_files_match_the_generator() {
    let files = crd_files().expect("CRDs render");
    assert_eq!(files.len(), 7, "six Spiderpool kinds and the Multus NAD");
    let dir = crd_dir();
    if std::env::var_os("UPDATE_CRDS").is_some() {
        std::fs::create_dir_all(&dir).expect("crds dir");
        for (name, text) in &files {
            std::fs::write(dir.join(name), text).expect("write CRD");
        }
    }
    let mut committed: Vec<String> = std::fs::read_dir(&dir)
        .expect("charts/spiderpool/crds exists (UPDATE_CRDS=1 writes it)")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    committed.sort();
    let mut generated: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    generated.sort();
    assert_eq!(
        committed, generated,
        "file set differs; run with UPDATE_CRDS=1"
    );
    for (name, text) in &files {
        let on_disk = std::fs::read_to_string(dir.join(name)).expect("read CRD");
        assert!(
            on_disk == *text,
            "{name} differs from the generator; run with UPDATE_CRDS=1"
        );
    }
}

#[test]
#[ignore = "needs apiserver"]
fn k8s_crds_accepted_by_the_apiserver_with_upstream_names() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let tc = spiderpool_k8s::testing::TestCluster::new("crds")
            .await
            .expect("cluster with CRDs installed and Established");
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
        let api: kube::Api<CustomResourceDefinition> = kube::Api::all(tc.client.clone());
        for (name, short) in [
            ("spiderippools.spiderpool.spidernet.io", "sp"),
            ("spidersubnets.spiderpool.spidernet.io", "ss"),
            ("spiderendpoints.spiderpool.spidernet.io", "se"),
            ("spiderreservedips.spiderpool.spidernet.io", "sr"),
            ("spidermultusconfigs.spiderpool.spidernet.io", "smc"),
            ("spidercoordinators.spiderpool.spidernet.io", "scc"),
            ("network-attachment-definitions.k8s.cni.cncf.io", "net-attach-def"),
        ] {
            let crd = api.get(name).await.expect("CRD installed");
            let shorts = crd.spec.names.short_names.clone().unwrap_or_default();
            assert!(shorts.iter().any(|s| s == short), "{name}: {shorts:?}");
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            assert!(established, "{name} not Established");
        }
    });
}
