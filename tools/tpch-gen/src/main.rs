//! `tpch-gen SCALE_FACTOR DIR`: one file per TPC-H table in DIR
//! (`<table>.tbl`), rows as `|`-separated text that `COPY ... WITH
//! (DELIMITER '|')` reads.

use std::fmt::Display;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator, PartSuppGenerator, RegionGenerator,
    SupplierGenerator,
};

/// Write rows in dbgen's format without its trailing `|`.
fn write_table<T: Display>(dir: &Path, table: &str, rows: impl Iterator<Item = T>) -> std::io::Result<usize> {
    let mut out = BufWriter::new(File::create(dir.join(format!("{table}.tbl")))?);
    let mut n = 0;
    let mut line = String::new();
    for row in rows {
        line.clear();
        std::fmt::Write::write_fmt(&mut line, format_args!("{row}")).expect("formatting into a String");
        let line = line.strip_suffix('|').unwrap_or(&line);
        writeln!(out, "{line}")?;
        n += 1;
    }
    out.flush()?;
    Ok(n)
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: tpch-gen SCALE_FACTOR DIR");
        std::process::exit(2);
    }
    let sf: f64 = args[1].parse().unwrap_or_else(|_| {
        eprintln!("scale factor must be a number, not {}", args[1]);
        std::process::exit(2)
    });
    let dir = Path::new(&args[2]);
    std::fs::create_dir_all(dir)?;
    let counts = [
        ("region", write_table(dir, "region", RegionGenerator::new(sf, 1, 1).iter())?),
        ("nation", write_table(dir, "nation", NationGenerator::new(sf, 1, 1).iter())?),
        ("part", write_table(dir, "part", PartGenerator::new(sf, 1, 1).iter())?),
        ("supplier", write_table(dir, "supplier", SupplierGenerator::new(sf, 1, 1).iter())?),
        ("partsupp", write_table(dir, "partsupp", PartSuppGenerator::new(sf, 1, 1).iter())?),
        ("customer", write_table(dir, "customer", CustomerGenerator::new(sf, 1, 1).iter())?),
        ("orders", write_table(dir, "orders", OrderGenerator::new(sf, 1, 1).iter())?),
        ("lineitem", write_table(dir, "lineitem", LineItemGenerator::new(sf, 1, 1).iter())?),
    ];
    for (table, n) in counts {
        println!("{table} {n}");
    }
    Ok(())
}
