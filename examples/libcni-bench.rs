//! The project side of `shared/bench/compare.sh`: drives this library with
//! the same flags and output lines as the reference `libcni-bench`.
//!
//! ```text
//! libcni-bench --load DIR --n N
//! ```
use std::time::Instant;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = arg(&args, "--n").map_or(100, |v| v.parse().expect("--n"));
    if let Some(dir) = arg(&args, "--load") {
        let loader = libcni::ConfigLoader::new(&dir);
        let start = Instant::now();
        let mut count = 0;
        for _ in 0..n {
            let all = loader.load_all().expect("load");
            assert!(all.errors().is_empty(), "{:?}", all.errors());
            count += all.networks().len();
        }
        let el = start.elapsed().as_micros() as f64;
        println!(
            "load files={} per_pass_us={:.1} per_file_us={:.2}",
            count / n,
            el / n as f64,
            el / count as f64
        );
        return;
    }
    eprintln!("usage: libcni-bench --load DIR --n N");
    std::process::exit(2);
}
