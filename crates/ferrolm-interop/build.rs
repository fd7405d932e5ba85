//! Links the system libolm (Debian: `apt-get install libolm-dev`, libolm 3.2.x).

fn main() {
    println!("cargo:rustc-link-lib=olm");
    println!("cargo:rerun-if-changed=build.rs");
}
