// The C ABI promises SONAME libmemcache.so.0 so that programs linked against the 2006 library
// load ours unchanged.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libmemcache.so.0");
    println!("cargo:rerun-if-changed=build.rs");
}
