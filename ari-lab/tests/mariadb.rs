//! The shared MariaDB: started once, reused by a second start in the same directory,
//! one database per test, reachable with the lab user's password over TCP.

use ari_lab::mariadb::{MariaDb, server_dir};

#[test]
fn the_shared_server_is_reused_and_gives_each_test_its_own_database() {
    let server = MariaDb::get();
    let again = MariaDb::start_or_reuse(&server_dir()).expect("the running server is found");
    assert_eq!((again.pid, again.port), (server.pid, server.port));
    assert!(
        server
            .url("x")
            .starts_with("mysql://lab:lab-password@127.0.0.1:")
    );

    let one = server.database("ari-lab-one");
    let two = server.database("ari-lab-two");
    assert_ne!(one.name, two.name);
    one.sql("CREATE TABLE t (n INT); INSERT INTO t VALUES (7)")
        .unwrap();
    assert_eq!(one.sql("SELECT n FROM t").unwrap().trim(), "7");
    assert!(
        two.sql("SELECT n FROM t").is_err(),
        "databases are separate"
    );
    let name = one.name.clone();
    drop(one);
    let left = server.sql("SHOW DATABASES").unwrap();
    assert!(!left.lines().any(|db| db == name), "{name} dropped: {left}");
    let version = server.sql("SELECT VERSION()").unwrap();
    assert!(version.contains("MariaDB"), "{version}");
}
