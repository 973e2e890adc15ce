//! Generates the gRPC server code from `proto/` with protox (a protobuf
//! compiler in Rust), so building needs no `protoc` on the machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/streams.proto",
        "proto/serverfeatures.proto",
        "proto/gossip.proto",
    ];
    for f in files
        .iter()
        .chain(&["proto/shared.proto", "proto/status.proto"])
    {
        println!("cargo:rerun-if-changed={f}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_build::configure()
        // The client stubs let tests send requests the official client
        // never would (malformed ones).
        .build_client(true)
        .build_server(true)
        .bytes(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
