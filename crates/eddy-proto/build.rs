//! Compiles proto/ with protox (a pure-Rust protobuf compiler, so no `protoc` is needed on the
//! build machine) and generates the tonic services from the resulting descriptors.

use std::path::PathBuf;

use prost::Message;

/// The client-facing services, the ones gRPC reflection describes.
const PUBLIC_PROTOS: &[&str] = &["eddy/v1/eddy.proto", "eddy/v1/groups.proto", "eddy/v1/security.proto"];
const PROTOS: &[&str] =
    &["eddy/v1/eddy.proto", "eddy/v1/groups.proto", "eddy/v1/security.proto", "eddy/internal/v1/internal.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not compiled in: checkouts at other paths share the target directory
    // (CI reuses it), and a build script compiled for one must not read another's protos.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={}", root.join(proto).display());
    }
    let fds = protox::compile(PROTOS, [&root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // The public services' descriptors are served by gRPC reflection, so tools like grpcurl work
    // without the files; the node-to-node services stay out of it.
    let public = protox::compile(PUBLIC_PROTOS, [&root])?;
    std::fs::write(out_dir.join("eddy_public_descriptor.bin"), public.encode_to_vec())?;
    // Every service decodes through `codec::EddyCodec`, which bounds a request before decoding it.
    tonic_prost_build::configure().bytes(".").codec_path("crate::codec::EddyCodec").compile_fds(fds)?;
    Ok(())
}
