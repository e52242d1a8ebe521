//! Swagger UI for `/docs` (`DOCS_ENABLED`): the three files the page needs, taken at build
//! time from the zip that `utoipa-swagger-ui-vendored` ships on crates.io (so the build
//! works offline). Only these are embedded: the whole dist (source maps, ES bundles) would
//! add ~3 MB compressed to every image, the runner's included.

use std::io::Read;

const FILES: &[&str] = &[
    "swagger-ui-bundle.js",
    "swagger-ui.css",
    "favicon-32x32.png",
];

fn main() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let zip = std::io::Cursor::new(utoipa_swagger_ui_vendored::SWAGGER_UI_VENDORED);
    let mut archive = zip::ZipArchive::new(zip).expect("the vendored Swagger UI zip");
    for name in FILES {
        let entry = (0..archive.len())
            .find(|&i| {
                let f = archive.by_index(i).expect("zip entry");
                f.name().ends_with(&format!("/dist/{name}"))
            })
            .unwrap_or_else(|| panic!("dist/{name} is not in the vendored Swagger UI zip"));
        let mut bytes = Vec::new();
        archive
            .by_index(entry)
            .expect("zip entry")
            .read_to_end(&mut bytes)
            .expect("read zip entry");
        std::fs::write(out.join(name), bytes).expect("write to OUT_DIR");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
