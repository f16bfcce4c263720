//! Generates the tonic and prost code for `proto/fjord/v1/fjord.proto` with a protoc that ships
//! inside a crate, so a fresh machine needs no system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=proto/fjord/v1/fjord.proto");
    let descriptors = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("fjord_v1_descriptor.bin");
    tonic_prost_build::configure()
        .file_descriptor_set_path(descriptors)
        .compile_protos(&["proto/fjord/v1/fjord.proto"], &["proto"])?;
    Ok(())
}
