//! The controller's do-not-call routes (`POST /dnc`, `GET /dnc`, `GET /dnc/{number}`,
//! `DELETE /dnc/{number}`) over a real TCP listener on 127.0.0.1, with the real
//! controller (`app::Controller`, as `serve` builds it) on an SQLite campaign store (and
//! one on the lab's MariaDB) and no run under way: numbers are normalised as the import does, bad input is a 400 that says
//! why (repeating only the start of a bad value) and adds nothing, and what the routes did
//! is in the store's `dnc` table, which the controller lets go after each request (a
//! `/start` or another process can open it). A request waiting on the database holds up
//! neither `/status` nor `/stop`.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use outbound_dialer::app::Controller;
use outbound_dialer::serve;
use outbound_dialer::store::Store;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Every wait in these tests ends by then.
const DEADLINE: Duration = Duration::from_secs(10);

/// A controller serving on 127.0.0.1:0 over a campaign store in a directory of its own.
struct Server {
    address: SocketAddr,
    dir: PathBuf,
    campaign: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// On an SQLite file of its own.
    async fn start(name: &str) -> Server {
        Server::start_on(name, None).await
    }

    /// On `db` (a MySQL URL), or an SQLite file of its own.
    async fn start_on(name: &str, db: Option<&str>) -> Server {
        let campaign = ari_lab::unique_name(name);
        let dir = std::env::temp_dir().join(format!("dialer-{campaign}"));
        std::fs::create_dir_all(&dir).unwrap();
        let sqlite = dir.join("campaign.sqlite");
        let db = db.unwrap_or_else(|| sqlite.to_str().unwrap());
        let argv: Vec<OsString> = [
            "outbound-dialer",
            "serve",
            "--campaign",
            campaign.as_str(),
            "--db",
            db,
            "--number",
            "5550001111",
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        let controller = Arc::new(Controller::new(argv, None));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(serve::serve(listener, controller, async move {
            let _ = signal.await;
        }));
        Server {
            address,
            dir,
            campaign,
            shutdown: Some(shutdown),
            task,
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.join("campaign.sqlite")
    }

    async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        tokio::time::timeout(DEADLINE, &mut self.task)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One exchange: the status and the JSON body (every answer of these routes is JSON).
async fn request(address: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let exchange = async {
        let mut stream = TcpStream::connect(address).await.unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body.as_bytes()).await.unwrap();
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).await.unwrap();
        bytes
    };
    let bytes = tokio::time::timeout(DEADLINE, exchange)
        .await
        .expect("the server answers");
    let text = String::from_utf8(bytes).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    (status, serde_json::from_str(body).expect("a JSON body"))
}

/// A 400 whose message contains `says`.
async fn refused(address: SocketAddr, method: &str, path: &str, body: &str, says: &str) {
    let (status, reply) = request(address, method, path, body).await;
    assert_eq!(status, 400, "{method} {path} {body}: {reply}");
    assert_eq!(reply["status"], "error", "{reply}");
    let message = reply["message"].as_str().unwrap();
    assert!(message.contains(says), "{method} {path} {body}: {message}");
    assert_eq!(reply.as_object().unwrap().len(), 2, "{reply}");
}

/// The store's own view: where a number's entry came from, straight from the table.
async fn stored_source(db: &Path, campaign: &str, number: &str) -> Option<String> {
    let store = Store::open(db, campaign).await.expect("the store is free");
    let source = store.is_dnc(number).await.unwrap();
    store.close().await;
    source
}

#[tokio::test]
async fn numbers_are_added_looked_up_counted_and_removed() {
    let server = Server::start("dnc-api").await;
    let address = server.address;

    assert_eq!(
        request(address, "GET", "/dnc", "").await,
        (200, json!({"status": "success", "count": 0}))
    );

    // One number, written as people write it: stored as the import normalises it.
    let (status, reply) = request(
        address,
        "POST",
        "/dnc",
        r#"{"number": "+1 (555) 123-4567"}"#,
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply,
        json!({
            "status": "success",
            "message": "1 number added to the do-not-call list",
            "added": 1,
            "numbers": ["15551234567"],
        })
    );

    // A list with one already on it (spelt differently), a duplicate, and a source.
    let (status, reply) = request(
        address,
        "POST",
        "/dnc",
        r#"{"numbers": ["1.555.123.4567", "555-000-2222", "5550002222", 5550003333], "source": "complaint 17"}"#,
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["added"], 2, "{reply}");
    assert_eq!(
        reply["numbers"],
        json!(["15551234567", "5550002222", "5550003333"])
    );
    assert_eq!(
        reply["message"],
        "2 numbers added to the do-not-call list (1 already on it)"
    );

    // Looked up in any spelling; the first source is kept.
    let (status, reply) = request(address, "GET", "/dnc/+1%20555%20123%204567", "").await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["number"], "15551234567");
    assert_eq!(reply["dnc"], true);
    assert_eq!(reply["source"], "api");
    assert!(
        reply["added_at"].as_i64().unwrap() > 1_600_000_000_000,
        "{reply}"
    );
    let (_, reply) = request(address, "GET", "/dnc/555-000-2222", "").await;
    assert_eq!(
        (&reply["dnc"], &reply["source"]),
        (&json!(true), &json!("complaint 17"))
    );
    assert_eq!(
        request(address, "GET", "/dnc/5559990000", "").await,
        (
            200,
            json!({"status": "success", "number": "5559990000", "dnc": false})
        )
    );
    assert_eq!(request(address, "GET", "/dnc", "").await.1["count"], 3);

    // The routes wrote the store's table, and let the store go after each request.
    assert_eq!(
        stored_source(&server.db(), &server.campaign, "5550003333")
            .await
            .as_deref(),
        Some("complaint 17")
    );

    // Removed once; a second time it is not there.
    let (status, reply) = request(address, "DELETE", "/dnc/(555)%20000-2222", "").await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply,
        json!({
            "status": "success",
            "message": "5550002222 taken off the do-not-call list",
            "number": "5550002222",
            "dnc": false,
        })
    );
    assert_eq!(
        request(address, "DELETE", "/dnc/5550002222", "").await,
        (
            404,
            json!({"status": "error", "message": "5550002222 is not on the do-not-call list"})
        )
    );
    assert_eq!(
        request(address, "GET", "/dnc/5550002222", "").await.1["dnc"],
        false
    );
    assert_eq!(request(address, "GET", "/dnc", "").await.1["count"], 2);
    assert_eq!(
        stored_source(&server.db(), &server.campaign, "5550002222").await,
        None
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_input_is_400_and_adds_nothing() {
    let server = Server::start("dnc-api-bad").await;
    let address = server.address;
    for (body, says) in [
        ("", "the body is not JSON"),
        ("number=5551234567", "the body is not JSON"),
        (r#"["5551234567"]"#, "not a JSON object"),
        ("{}", r#"no "number" or "numbers""#),
        (r#"{"numbers": "5551234567"}"#, r#""numbers" is not a list"#),
        (r#"{"numbers": []}"#, r#""numbers" is empty"#),
        (
            r#"{"number": "5551234567", "numbers": ["5551234568"]}"#,
            r#"both "number" and "numbers""#,
        ),
        (r#"{"number": "12"}"#, "has 2 digits, at least 3 are needed"),
        (
            r#"{"number": "555-CALL-NOW"}"#,
            "'C' is not allowed in a number",
        ),
        (r#"{"number": "555+1234"}"#, "'+' is allowed once"),
        (r#"{"number": null}"#, "null is not a phone number"),
        (r#"{"number": -5551234}"#, "is not a phone number"),
        // One bad number refuses the whole list: nothing of it is added.
        (
            r#"{"numbers": ["5551234567", "5551234568", "call me"]}"#,
            "number 3 of the request: \"call me\" is not a phone number",
        ),
        (
            r#"{"number": "5551234567", "source": ""}"#,
            r#""source" must be a non-empty string"#,
        ),
        (
            r#"{"number": "5551234567", "source": 7}"#,
            r#""source" must be a non-empty string"#,
        ),
    ] {
        refused(address, "POST", "/dnc", body, says).await;
    }
    let many: Vec<String> = (0..=serve::MAX_DNC_PER_REQUEST)
        .map(|i| format!("555{i:07}"))
        .collect();
    refused(
        address,
        "POST",
        "/dnc",
        &json!({ "numbers": many }).to_string(),
        "at most 10000: load a bigger list with --dnc-file",
    )
    .await;
    // A body over the server's limit (2 MB) is a JSON error as well.
    let (status, reply) = request(
        address,
        "POST",
        "/dnc",
        &format!(
            r#"{{"number": "5551234567", "pad": "{}"}}"#,
            "x".repeat(2 << 20)
        ),
    )
    .await;
    assert_eq!(status, 413, "{reply}");
    assert_eq!(reply["status"], "error", "{reply}");
    for path in ["/dnc/12", "/dnc/abc", "/dnc/5%2B5"] {
        refused(address, "GET", path, "", "is not a phone number").await;
        refused(address, "DELETE", path, "", "is not a phone number").await;
    }
    assert_eq!(
        request(address, "GET", "/dnc", "").await,
        (200, json!({"status": "success", "count": 0}))
    );
    // Other methods are the API's 405, with the routes' methods.
    let (status, reply) = request(address, "PUT", "/dnc", "{}").await;
    assert_eq!(status, 405, "{reply}");
    assert_eq!(reply["message"], "method PUT is not allowed on /dnc");
    let (status, _) = request(address, "POST", "/dnc/5551234567", "").await;
    assert_eq!(status, 405);
    server.stop().await;
}

#[tokio::test]
async fn on_mariadb_the_routes_edit_the_campaigns_shared_table() {
    let db = ari_lab::mariadb::MariaDb::get().database("dncapi");
    let server = Server::start_on("dnc-api-maria", Some(&db.url)).await;
    let address = server.address;
    let (status, reply) = request(
        address,
        "POST",
        "/dnc",
        r#"{"numbers": ["+44 20 7946 0000", "4420 7946 0001"], "source": "ofcom"}"#,
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["added"], 2, "{reply}");
    // What any dialer of the campaign reads before its originates.
    assert_eq!(
        db.sql("SELECT number, source FROM dnc ORDER BY number")
            .unwrap(),
        "442079460000\tofcom\n442079460001\tofcom\n"
    );
    // And what an operator INSERTs, the routes see.
    db.sql("INSERT INTO dnc (number, source, added_at) VALUES ('442079460002', 'operator', 7)")
        .unwrap();
    assert_eq!(
        request(address, "GET", "/dnc/+442079460002", "").await.1,
        json!({"status": "success", "number": "442079460002", "dnc": true, "source": "operator", "added_at": 7})
    );
    assert_eq!(request(address, "GET", "/dnc", "").await.1["count"], 3);
    assert_eq!(
        request(address, "DELETE", "/dnc/442079460000", "").await.0,
        200
    );
    assert_eq!(db.sql("SELECT COUNT(*) FROM dnc").unwrap().trim(), "2");
    server.stop().await;
}

#[tokio::test]
async fn a_bad_number_is_named_by_its_start_not_echoed_whole() {
    let server = Server::start("dnc-api-echo").await;
    let address = server.address;
    // Multibyte characters, so that a cut by bytes would fall inside one.
    let long = format!("5551234567{}", "é".repeat(200_000));
    let shown = format!("{:?}…", format!("5551234567{}", "é".repeat(30)));
    let (status, reply) = request(
        address,
        "POST",
        "/dnc",
        &json!({ "numbers": ["5550001234", long] }).to_string(),
    )
    .await;
    assert_eq!(status, 400, "{reply}");
    let message = reply["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "number 2 of the request: {shown} is not a phone number: 'é' is not allowed"
        )),
        "{message}"
    );
    assert!(message.len() < 300, "{} bytes: {message}", message.len());
    // A value that is not a string is cut the same way.
    let (status, reply) = request(
        address,
        "POST",
        "/dnc",
        &json!({ "numbers": ["5550001234", "5550001235", vec![7; 100_000]] }).to_string(),
    )
    .await;
    assert_eq!(status, 400, "{reply}");
    let message = reply["message"].as_str().unwrap();
    assert!(
        message.starts_with("number 3 of the request: [7,7,7,")
            && message.ends_with(",7,7… is not a phone number (a string)"),
        "{message}"
    );
    // A short one is shown whole, and nothing of either list was added.
    refused(
        address,
        "GET",
        "/dnc/555-CALL-NOW",
        "",
        "\"555-CALL-NOW\" is not a phone number",
    )
    .await;
    assert_eq!(request(address, "GET", "/dnc", "").await.1["count"], 0);
    server.stop().await;
}

#[tokio::test]
async fn status_and_orders_answer_while_a_dnc_request_waits_on_the_database() {
    use sqlx::{Connection as _, Row as _};
    let db = ari_lab::mariadb::MariaDb::get().database("dncwait");
    let server = Server::start_on("dnc-api-wait", Some(&db.url)).await;
    let address = server.address;
    assert_eq!(
        request(address, "POST", "/dnc", r#"{"number": "5550009999"}"#)
            .await
            .0,
        200
    );
    // Another client holds the row's lock in an open transaction: the POST below, which
    // writes that number too, waits for it (up to innodb_lock_wait_timeout, 20 s).
    let mut holder = tokio::time::timeout(DEADLINE, sqlx::MySqlConnection::connect(&db.url))
        .await
        .expect("MariaDB answers")
        .unwrap();
    let mut tx = holder.begin().await.unwrap();
    sqlx::query("SELECT number FROM dnc WHERE number = '5550009999' FOR UPDATE")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let post = tokio::spawn(async move {
        request(
            address,
            "POST",
            "/dnc",
            r#"{"numbers": ["5550009999", "5550008888"]}"#,
        )
        .await
    });
    // The POST's INSERT is under way in this database (it can only be waiting for us).
    let mut watcher = sqlx::MySqlConnection::connect(&db.url).await.unwrap();
    let waiting_from = tokio::time::Instant::now();
    loop {
        let inserts: i64 = sqlx::query(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND INFO LIKE '%INTO dnc%'",
        )
        .fetch_one(&mut watcher)
        .await
        .unwrap()
        .get(0);
        if inserts > 0 {
            break;
        }
        assert!(
            waiting_from.elapsed() < DEADLINE,
            "the POST /dnc never reached the database"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Meanwhile the controller's other routes answer at once.
    let within = Duration::from_secs(1);
    let (status, reply) = tokio::time::timeout(within, request(address, "GET", "/status", ""))
        .await
        .expect("GET /status answers while a POST /dnc waits on the database");
    assert_eq!((status, &reply["state"]), (200, &json!("idle")), "{reply}");
    let (status, _) = tokio::time::timeout(within, request(address, "POST", "/stop", ""))
        .await
        .expect("POST /stop answers while a POST /dnc waits on the database");
    assert_eq!(status, 409, "nothing runs");
    // And so do reads of the list on MySQL (each request has a connection of its own).
    let (status, reply) = tokio::time::timeout(within, request(address, "GET", "/dnc", ""))
        .await
        .expect("GET /dnc answers while a POST /dnc waits on the database");
    assert_eq!((status, &reply["count"]), (200, &json!(1)), "{reply}");
    assert!(!post.is_finished(), "the POST still waits for the row lock");
    // Once the lock is let go, the POST completes.
    tx.rollback().await.unwrap();
    let (status, reply) = tokio::time::timeout(DEADLINE, post)
        .await
        .expect("the POST completes once the lock is released")
        .unwrap();
    assert_eq!((status, &reply["added"]), (200, &json!(1)), "{reply}");
    assert_eq!(db.sql("SELECT COUNT(*) FROM dnc").unwrap().trim(), "2");
    server.stop().await;
}

#[tokio::test]
async fn concurrent_requests_on_an_idle_sqlite_store_take_turns_at_its_file() {
    // Each request opens the file, whose lock refuses a second opener (this process
    // too): they must take turns, not fail with "in use".
    let server = Server::start("dnc-api-turns").await;
    let address = server.address;
    let requests: Vec<_> = (0..8)
        .map(|i| {
            tokio::spawn(async move {
                let body = format!(r#"{{"number": "555000{i:04}"}}"#);
                let added = request(address, "POST", "/dnc", &body).await;
                let counted = request(address, "GET", "/dnc", "").await;
                (added, counted)
            })
        })
        .collect();
    for request in requests {
        let ((status, reply), (counted, count)) = request.await.unwrap();
        assert_eq!((status, &reply["added"]), (200, &json!(1)), "{reply}");
        assert_eq!(counted, 200, "{count}");
    }
    assert_eq!(request(address, "GET", "/dnc", "").await.1["count"], 8);
    server.stop().await;
}

#[tokio::test]
async fn a_controller_without_a_store_says_so() {
    // The fake controllers of other tests have no list: the default answers 503.
    struct NoList;
    impl serve::Control for NoList {
        fn start(
            &self,
        ) -> futures::future::BoxFuture<'_, Result<serve::Started, serve::ControlError>> {
            Box::pin(async { Ok(serve::Started::Now) })
        }
        fn status(
            &self,
        ) -> futures::future::BoxFuture<'_, outbound_dialer::status::CampaignStatus> {
            Box::pin(async {
                outbound_dialer::status::CampaignStatus::empty(
                    "c",
                    outbound_dialer::status::RunState::Idle,
                )
            })
        }
        fn pause(&self) -> futures::future::BoxFuture<'_, Result<(), serve::ControlError>> {
            Box::pin(async { Ok(()) })
        }
        fn resume(&self) -> futures::future::BoxFuture<'_, Result<(), serve::ControlError>> {
            Box::pin(async { Ok(()) })
        }
        fn stop(&self) -> futures::future::BoxFuture<'_, Result<(), serve::ControlError>> {
            Box::pin(async { Ok(()) })
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (shutdown, signal) = oneshot::channel::<()>();
    let task = tokio::spawn(serve::serve(listener, Arc::new(NoList), async move {
        let _ = signal.await;
    }));
    assert_eq!(
        request(address, "GET", "/dnc", "").await,
        (
            503,
            json!({"status": "error", "message": "this controller has no do-not-call list"})
        )
    );
    // Input is checked first: a bad number is still the client's 400.
    assert_eq!(request(address, "GET", "/dnc/12", "").await.0, 400);
    let _ = shutdown.send(());
    tokio::time::timeout(DEADLINE, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
