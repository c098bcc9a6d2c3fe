//! The API of the application `fileintel serve` runs, started on port 0 over a real embedded
//! store (`testing::spawn_app`).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fileintel_server::ServerConfig;
use fileintel_server::testing::{self, Answer, TestApp};
use serde_json::{Value, json};

const SHA1: &str = "4388963aaa83afe2042a46a3c017ad50bdcdafb3";
const SHA256: &str = "413c58c8267d2c8648d8f6384bacc2ae9c929b2b96578b6860b5087cd1bd6462";
const MD5: &str = "8f2e01c0a1e4b0f4d6ad9f0e3d1c2b4a";

/// The API in open mode (`--insecure-no-auth`), for the tests that are about files, not tokens.
async fn spawn_app(batch: usize) -> App {
    spawn_app_with(|config| config.ingest_batch = batch).await
}

/// The application `fileintel serve` runs, on port 0, with `configure` applied to the handlers'
/// settings.
async fn spawn_app_with(configure: impl FnOnce(&mut ServerConfig)) -> App {
    App(testing::spawn_app_with(|config| {
        config.insecure_no_auth = true;
        config.server.max_ingest_bytes = 64 * 1024;
        configure(&mut config.server);
    })
    .await)
}

/// The test application, sending what these tests send as an MDE client would.
struct App(TestApp);

impl std::ops::Deref for App {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.0
    }
}

impl App {
    async fn get(&self, path: &str) -> Answer {
        let request = Request::get(path)
            .header("host", "fileintel.example:8443")
            .header("accept", "application/json, text/plain, */*")
            .header("content-type", "application/json")
            .body(Body::empty())
            .unwrap();
        self.send(request).await
    }

    async fn ingest(&self, body: String) -> Answer {
        self.0.ingest(body, None).await
    }
}

fn observation(device: &str, time: &str, hashes: &str) -> String {
    format!(
        r#"{{"tenantId":"contoso","deviceId":"{device}","timestamp":"{time}",{hashes},"size":22139496,"fileName":"setup.exe"}}"#
    )
}

async fn app_with_one_file() -> App {
    let app = spawn_app(1000).await;
    let hashes = format!(r#""sha1":"{SHA1}","sha256":"{}","md5":"{MD5}""#, SHA256.to_uppercase());
    let body = [
        observation("d-1", "2017-09-19T03:51:27.6785431Z", &hashes),
        observation("d-2", "2020-01-06T03:59:21.3229314Z", &hashes),
        observation("d-1", "2019-01-01T00:00:00Z", &hashes),
    ]
    .join("\n");
    let answer = app.ingest(body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json()["accepted"], 3);
    app
}

#[tokio::test]
async fn get_file_answers_by_every_hash_form_and_case() {
    let app = app_with_one_file().await;
    let mut bodies = Vec::new();
    for id in [SHA1, SHA256, MD5] {
        for id in [id.to_owned(), id.to_uppercase()] {
            for prefix in ["/api/files/", "/api/v1.0/files/"] {
                let answer = app.get(&format!("{prefix}{id}")).await;
                assert_eq!(answer.status, StatusCode::OK, "{prefix}{id}: {}", answer.text);
                assert_eq!(answer.headers["odata-version"], "4.0");
                assert!(answer.headers["content-type"].to_str().unwrap().starts_with("application/json"));
                bodies.push(answer.text);
            }
        }
    }
    assert!(bodies.windows(2).all(|pair| pair[0] == pair[1]), "every form returns the same entity");
}

#[tokio::test]
async fn get_file_returns_the_entity_in_metadata_order() {
    let app = app_with_one_file().await;
    let answer = app.get(&format!("/api/files/{SHA1}")).await;
    let expected = format!(
        concat!(
            r#"{{"@odata.context":"http://fileintel.example:8443/api/$metadata#Files/$entity","#,
            r#""sha1":"{}","sha256":"{}","md5":"{}","globalPrevalence":2,"#,
            r#""globalFirstObserved":"2017-09-19T03:51:27.6785431Z","globalLastObserved":"2020-01-06T03:59:21.3229314Z","#,
            r#""size":22139496,"fileType":null,"isPeFile":null,"filePublisher":null,"fileProductName":null,"#,
            r#""signer":null,"issuer":null,"signerHash":null,"isValidCertificate":null,"#,
            r#""determinationType":"Unknown","determinationValue":null}}"#
        ),
        SHA1, SHA256, MD5
    );
    assert_eq!(answer.text, expected);
}

#[tokio::test]
async fn get_file_returns_404_for_an_unknown_sha256() {
    let app = app_with_one_file().await;
    let unknown = "0".repeat(64);
    let answer = app.get(&format!("/api/files/{unknown}")).await;
    let body = answer.assert_envelope(StatusCode::NOT_FOUND, "ResourceNotFound");
    assert!(body["error"]["message"].as_str().unwrap().contains(&unknown));
}

#[tokio::test]
async fn get_file_returns_400_for_ids_that_are_not_hashes() {
    let app = app_with_one_file().await;
    for id in ["xyz", "4388963aaa83afe2042a46a3c017ad50bdcdafbZ", &"a".repeat(41), "%E2%82%AC%E2%82%AC", "%FF"] {
        let answer = app.get(&format!("/api/files/{id}")).await;
        answer.assert_envelope(StatusCode::BAD_REQUEST, "InvalidHashValue");
    }
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_in_the_envelope() {
    let app = spawn_app(10).await;
    app.get("/api/nothing-here").await.assert_envelope(StatusCode::NOT_FOUND, "ResourceNotFound");
    let delete = Request::delete(format!("/api/files/{SHA1}")).body(Body::empty()).unwrap();
    app.send(delete).await.assert_envelope(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed");
    let get_ingest = Request::get("/api/ingest/observations").body(Body::empty()).unwrap();
    app.send(get_ingest).await.assert_envelope(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed");
}

#[tokio::test]
async fn ingestion_reports_each_rejected_line_and_keeps_the_rest() {
    // A batch size of 2 makes the five good lines span several commits.
    let app = spawn_app(2).await;
    let good = |device: &str| observation(device, "2026-11-20T08:15:30Z", &format!(r#""sha1":"{SHA1}""#));
    let body = [
        good("a"),
        "{broken".to_owned(),
        good("b"),
        String::new(),
        observation("c", "yesterday", &format!(r#""sha1":"{SHA1}""#)),
        good("c"),
        observation("d", "2026-11-20T08:15:30Z", r#""sha256":"abc""#),
        good("d"),
        good("a"),
    ]
    .join("\n");
    let answer = app.ingest(body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let summary = answer.json();
    assert_eq!(summary["accepted"], 5);
    assert_eq!(summary["rejected"], 3);
    let lines: Vec<u64> =
        summary["rejectedLines"].as_array().unwrap().iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [2, 5, 7]);
    assert!(summary["rejectedLines"][1]["reason"].as_str().unwrap().contains("timestamp"));
    let file = app.get(&format!("/api/files/{SHA1}")).await.json();
    assert_eq!(file["globalPrevalence"], 4);
    assert_eq!(file["sha256"], Value::Null);
}

#[tokio::test]
async fn an_ingestion_body_over_the_limit_is_refused_in_the_envelope() {
    let app = spawn_app(10).await;
    let line = observation("a", "2026-11-20T08:15:30Z", &format!(r#""sha1":"{SHA1}""#));
    let body = vec![line; 1000].join("\n");
    app.ingest(body).await.assert_envelope(StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge");
}

#[tokio::test]
async fn metadata_declares_the_file_properties_in_the_order_the_entity_carries_them() {
    let app = app_with_one_file().await;
    let answer = app.get("/api/$metadata").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.headers["content-type"].to_str().unwrap().contains("xml"));
    let file_type =
        answer.text.split("<EntityType Name=\"File\">").nth(1).unwrap().split("</EntityType>").next().unwrap();
    let declared: Vec<&str> =
        file_type.split("<Property Name=\"").skip(1).map(|rest| rest.split('"').next().unwrap()).collect();
    let entity = app.get(&format!("/api/files/{SHA1}")).await.json();
    let keys: Vec<&str> = entity.as_object().unwrap().keys().map(String::as_str).skip(1).collect();
    assert_eq!(declared, keys);
    for name in ["DeterminationType", "InOrgFileStats", "EntitySet Name=\"Files\""] {
        assert!(answer.text.contains(name), "{name} is not declared");
    }
}

/// `$metadata` as a schema-driven client reads it: entity sets to their types, types to their
/// properties (name, type, whether null is allowed) and enums to their members.
struct Schema {
    sets: std::collections::HashMap<String, String>,
    types: std::collections::HashMap<String, DeclaredType>,
    enums: std::collections::HashMap<String, Vec<String>>,
}

const NAMESPACE: &str = "microsoft.windowsDefenderATP.api.";

/// Whether a type is open, and its properties: name, type, whether null is allowed.
type DeclaredType = (bool, Vec<(String, String, bool)>);

impl Schema {
    fn read(xml: &str) -> Schema {
        let document = roxmltree::Document::parse(xml).expect("$metadata is well-formed XML");
        let mut schema = Schema { sets: Default::default(), types: Default::default(), enums: Default::default() };
        for node in document.descendants().filter(|node| node.is_element()) {
            let name = node.attribute("Name").unwrap_or_default().to_owned();
            match node.tag_name().name() {
                "EntitySet" => {
                    let entity_type = node.attribute("EntityType").unwrap().trim_start_matches(NAMESPACE);
                    schema.sets.insert(name, entity_type.to_owned());
                }
                "EntityType" | "ComplexType" => {
                    let properties = node
                        .children()
                        .filter(|child| child.has_tag_name("Property"))
                        .map(|property| {
                            (
                                property.attribute("Name").unwrap().to_owned(),
                                property.attribute("Type").unwrap().to_owned(),
                                property.attribute("Nullable") != Some("false"),
                            )
                        })
                        .collect();
                    schema.types.insert(name, (node.attribute("OpenType") == Some("true"), properties));
                }
                "EnumType" => {
                    let members = node
                        .children()
                        .filter(|child| child.has_tag_name("Member"))
                        .map(|member| member.attribute("Name").unwrap().to_owned())
                        .collect();
                    schema.enums.insert(name, members);
                }
                _ => {}
            }
        }
        schema
    }

    /// Checks an answer against the type its `@odata.context` names: every property it carries is
    /// declared (unless the type is open), every property that may not be null is there and not
    /// null, and every enum value is a declared member.
    fn check(&self, answer: &Value) {
        let context = answer["@odata.context"].as_str().expect("an @odata.context");
        let fragment = context.split_once("/api/$metadata#").unwrap_or_else(|| panic!("{context}")).1;
        let (type_name, items): (&str, Vec<&Value>) = if let Some(set) = fragment.strip_suffix("/$entity") {
            (self.sets.get(set).unwrap_or_else(|| panic!("entity set {set} is not declared")), vec![answer])
        } else if let Some(entity_type) = self.sets.get(fragment) {
            (entity_type, answer["value"].as_array().expect("a collection").iter().collect())
        } else {
            (fragment.strip_prefix(NAMESPACE).unwrap_or_else(|| panic!("{fragment} is not declared")), vec![answer])
        };
        let (open, properties) =
            self.types.get(type_name).unwrap_or_else(|| panic!("type {type_name} is not declared"));
        assert!(!items.is_empty(), "{context}: nothing to check");
        for item in items {
            let object = item.as_object().unwrap();
            for key in object.keys().filter(|key| !key.starts_with("@odata.")) {
                assert!(*open || properties.iter().any(|(name, ..)| name == key), "{type_name}.{key} is not declared");
            }
            for (name, property_type, nullable) in properties {
                let value = object.get(name).unwrap_or_else(|| panic!("{type_name}.{name} is missing"));
                assert!(*nullable || !value.is_null(), "{type_name}.{name} may not be null");
                let enum_name = property_type.trim_start_matches(NAMESPACE);
                if let (Some(members), Some(text)) = (self.enums.get(enum_name), value.as_str()) {
                    assert!(members.iter().any(|member| member == text), "{type_name}.{name}: {text} is not a member");
                }
            }
        }
    }
}

/// Every answer with an `@odata.context` names an entity set or type that `$metadata` declares,
/// and carries that type's properties as declared.
#[tokio::test]
async fn every_odata_context_an_answer_names_is_declared_in_metadata() {
    let app = app_with_one_file().await;
    let schema = Schema::read(&app.get("/api/$metadata").await.text);
    let indicator = json!({
        "indicatorValue": SHA256, "indicatorType": "FileSha256", "action": "Block",
        "title": "Dropper", "description": "Seen in an incident",
    });
    let request = Request::post("/api/indicators")
        .header("host", "fileintel.example:8443")
        .header("content-type", "application/json")
        .body(Body::from(indicator.to_string()))
        .unwrap();
    let submitted = app.send(request).await;
    assert_eq!(submitted.status, StatusCode::OK, "{}", submitted.text);
    // In open mode the caller speaks for the default tenant: give it a device.
    let line = observation("d-3", "2020-01-07T00:00:00Z", &format!(r#""sha1":"{SHA1}""#))
        .replace("\"contoso\"", &format!("\"{}\"", fileintel_core::DEFAULT_TENANT));
    assert_eq!(app.ingest(line).await.json()["accepted"], 1);
    let mut checked = 0;
    for answer in [
        submitted.json(),
        app.get(&format!("/api/files/{SHA1}")).await.json(),
        app.get(&format!("/api/files/{SHA1}/stats")).await.json(),
        app.get(&format!("/api/files/{SHA1}/machines")).await.json(),
        app.get("/api/indicators").await.json(),
    ] {
        schema.check(&answer);
        checked += 1;
    }
    assert_eq!(checked, 5);
}

/// An OData query option no route implements is refused, naming it, never ignored.
#[tokio::test]
async fn odata_query_options_are_refused_not_ignored() {
    let app = app_with_one_file().await;
    for (path, option) in [
        ("/api/indicators?$filter=action%20eq%20'Block'", "$filter"),
        (&format!("/api/files/{SHA1}?$select=sha1") as &str, "$select"),
        (&format!("/api/files/{SHA1}/stats?lookBackHours=24&%24top=1"), "$top"),
    ] {
        let body = app.get(path).await.assert_envelope(StatusCode::BAD_REQUEST, "ODataError");
        assert!(body["error"]["message"].as_str().unwrap().contains(option), "{path}: {body}");
    }
    assert_eq!(app.get(&format!("/api/files/{SHA1}/stats?lookBackHours=24")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn analysed_bytes_are_kept_only_where_configuration_says() {
    let post = |body: &[u8]| Request::post("/api/files/analyze").body(Body::from(body.to_vec())).unwrap();
    let files: [&[u8]; 2] = [b"#!/bin/sh\necho one\n", b"#!/bin/sh\necho two\n"];

    let dropped = spawn_app(1000).await;
    let answer = dropped.send(post(files[0])).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);

    let keep = tempfile::tempdir().unwrap();
    let kept = spawn_app_with(|config| config.keep_analyzed = Some(keep.path().join("samples"))).await;
    for body in files.iter().chain(files.iter()) {
        let answer = kept.send(post(body)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    }
    let mut names: Vec<String> = std::fs::read_dir(keep.path().join("samples"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut expected: Vec<String> =
        files.iter().map(|body| fileintel_analysis::digest(body).hashes().sha256.unwrap().to_string()).collect();
    expected.sort();
    assert_eq!(names, expected, "each file once, by SHA-256, and no temporary file left");
    for body in files {
        let name = fileintel_analysis::digest(body).hashes().sha256.unwrap().to_string();
        assert_eq!(std::fs::read(keep.path().join("samples").join(name)).unwrap(), body);
    }
}

/// An import adds to what a source said, unless it says it is the whole feed
/// (`mode=replace`): then the hashes it no longer lists stop speaking, kept as history.
#[tokio::test]
async fn a_whole_feed_import_ends_what_the_feed_no_longer_lists() {
    let sources =
        fileintel_feeds::sources_from_json(br#"[{"name":"vendor","rank":80,"writers":["default"]}]"#).unwrap();
    let app = spawn_app_with(|config| config.feed_sources = sources).await;
    let import = |mode: &str, body: &str| {
        Request::post(format!("/api/feeds/import?format=csv&source=vendor{mode}"))
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    let other = "0123456789012345678901234567890123456789";
    let determination =
        async |hash: &str| app.get(&format!("/api/files/{hash}")).await.json()["determinationType"].clone();
    let answer = app.send(import("", &format!("{SHA1},Malware,Emotet\n{other},Malware,Qakbot\n"))).await;
    assert_eq!(answer.json()["changed"], 2, "{}", answer.text);
    // A later file that lists only `other`, added: SHA1's verdict still speaks.
    let later = format!("{other},Malware,Qakbot\n");
    let answer = app.send(import("&mode=add", &later)).await;
    assert_eq!(answer.json()["ended"], 0, "{}", answer.text);
    assert_eq!(determination(SHA1).await, "Malware");
    // The same file as the whole feed: SHA1 is no longer listed, and stops speaking.
    let answer = app.send(import("&mode=replace", &later)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json()["ended"], 1, "{}", answer.text);
    // Nothing else knows the hash: with its one verdict silent, it is unknown again.
    let answer = app.get(&format!("/api/files/{SHA1}")).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "the verdict it no longer lists is silent: {}", answer.text);
    assert_eq!(determination(other).await, "Malware", "what it lists still speaks");
    let history = app.get(&format!("/api/files/{SHA1}/determinations")).await.json();
    assert_eq!(history["value"][0]["determinationValue"], "Emotet", "kept as history: {history}");
    assert_eq!(history["value"][0]["speaks"], false, "{history}");
    assert!(history["value"][0]["validUntil"].is_string(), "{history}");
    app.send(import("&mode=sometimes", &later)).await.assert_envelope(StatusCode::BAD_REQUEST, "BadRequest");
    // Listed again, it speaks again; a whole feed with a record it could not read ends nothing,
    // since that record may name a hash the feed still lists; nor does a feed that lists nothing.
    app.send(import("", &format!("{SHA1},Malware,Emotet\n"))).await;
    assert_eq!(determination(SHA1).await, "Malware");
    let with_a_bad_line = format!("{other},Malware,Qakbot\nnot-a-hash,Malware,x\n");
    for body in [with_a_bad_line.as_str(), ""] {
        let answer = app.send(import("&mode=replace", body)).await.json();
        assert_eq!(answer["ended"], 0, "{answer}");
        assert!(answer["notReplaced"].as_str().unwrap().contains("not replaced"), "{answer}");
        assert_eq!(determination(SHA1).await, "Malware", "{answer}");
    }
}

#[tokio::test]
async fn feeds_decide_the_determination_and_every_source_is_listed() {
    let sources = fileintel_feeds::sources_from_json(
        br#"[{"name":"bazaar","rank":40,"writers":["default"]},
            {"name":"vendor","rank":80,"labels":{"grayware":"Unwanted"},"writers":["default"]}]"#,
    )
    .unwrap();
    let app = spawn_app_with(|config| config.feed_sources = sources).await;
    let import = |source: &str, format: &str, body: String| {
        Request::post(format!("/api/feeds/import?format={format}&source={source}")).body(Body::from(body)).unwrap()
    };
    // Not yet spoken of: Unknown, null.
    let app = {
        let hashes = format!(r#""sha1":"{SHA1}","sha256":"{SHA256}","md5":"{MD5}""#);
        let answer = app.ingest(observation("d-1", "2026-11-20T08:15:30Z", &hashes)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        app
    };
    let file = app.get(&format!("/api/files/{SHA1}")).await.json();
    assert_eq!(
        (file["determinationType"].clone(), file["determinationValue"].clone()),
        (json!("Unknown"), Value::Null)
    );

    // MalwareBazaar says Malware, with the family; a row it cannot read is named by its line.
    let bazaar = format!(
        "# \"first_seen_utc\",\"sha256_hash\",\"md5_hash\",\"sha1_hash\",\"reporter\",\"file_name\",\"file_type_guess\",\"mime_type\",\"signature\"\n\
         \"2024-03-01 10:11:12\", \"{SHA256}\", \"{MD5}\", \"{SHA1}\", \"abuse_ch\", \"setup.exe\", \"exe\", \"application/x-dosexec\", \"AgentTesla\"\n\
         \"2024-03-01 10:11:13\", \"nothex\", \"\", \"\", \"abuse_ch\", \"x.exe\", \"exe\", \"\", \"n/a\"\n"
    );
    let answer = app.send(import("bazaar", "bazaar-csv", bazaar.clone())).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let body = answer.json();
    assert_eq!((body["taken"].clone(), body["changed"].clone()), (json!(1), json!(1)));
    assert_eq!(body["rejected"][0]["line"], 3, "{body}");
    let file = app.get(&format!("/api/files/{SHA1}")).await.json();
    assert_eq!(
        (file["determinationType"].clone(), file["determinationValue"].clone()),
        (json!("Malware"), json!("AgentTesla"))
    );
    // The same feed again changes nothing.
    assert_eq!(app.send(import("bazaar", "bazaar-csv", bazaar)).await.json()["changed"], 0);

    // A more trusted source says otherwise, by its own label: it wins; both are listed.
    let answer = app.send(import("vendor", "csv", format!("{SHA256},grayware,Toolbar\n"))).await;
    assert_eq!(answer.json()["changed"], 1, "{}", answer.text);
    let file = app.get(&format!("/api/files/{SHA1}")).await.json();
    assert_eq!(
        (file["determinationType"].clone(), file["determinationValue"].clone()),
        (json!("Unwanted"), json!("Toolbar"))
    );
    let determinations = app.get(&format!("/api/files/{SHA1}/determinations")).await.json();
    assert_eq!(determinations["determinationType"], "Unwanted");
    let listed: Vec<(String, bool, i64)> = determinations["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["source"].as_str().unwrap().to_owned(),
                entry["won"].as_bool().unwrap(),
                entry["rank"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed, [("bazaar".to_owned(), false, 40), ("vendor".to_owned(), true, 80)]);
    assert_eq!(determinations["value"][0]["saidAt"], "2024-03-01T10:11:12Z");
    assert_eq!(determinations["value"][0]["reference"], "line 2");

    // A hash no endpoint reported but a feed names: answered with that hash, no prevalence,
    // and the feed's determination; its sources are listed. Statistics stay 404.
    let only_fed = "9".repeat(64);
    app.get(&format!("/api/files/{only_fed}")).await.assert_envelope(StatusCode::NOT_FOUND, "ResourceNotFound");
    let answer = app.send(import("vendor", "csv", format!("{only_fed},Malware,Ransom:Win32/Xorist\n"))).await;
    assert_eq!(answer.json()["changed"], 1, "{}", answer.text);
    let file = app.get(&format!("/api/files/{only_fed}")).await.json();
    assert_eq!(
        (
            &file["sha256"],
            &file["sha1"],
            &file["globalPrevalence"],
            &file["determinationType"],
            &file["determinationValue"]
        ),
        (&json!(only_fed), &Value::Null, &Value::Null, &json!("Malware"), &json!("Ransom:Win32/Xorist")),
        "{file}"
    );
    let determinations = app.get(&format!("/api/files/{only_fed}/determinations")).await.json();
    assert_eq!(determinations["value"][0]["source"], "vendor", "{determinations}");
    app.get(&format!("/api/files/{only_fed}/stats")).await.assert_envelope(StatusCode::NOT_FOUND, "ResourceNotFound");
    // A hash no feed names is still unknown.
    app.get(&format!("/api/files/{}", "8".repeat(64))).await.assert_envelope(StatusCode::NOT_FOUND, "ResourceNotFound");

    // A source nobody configured, or no format: refused in the envelope.
    app.send(import("stranger", "csv", String::new())).await.assert_envelope(StatusCode::BAD_REQUEST, "BadRequest");
    let request = Request::post("/api/feeds/import?source=vendor").body(Body::empty()).unwrap();
    app.send(request).await.assert_envelope(StatusCode::BAD_REQUEST, "BadRequest");
}

#[tokio::test]
async fn an_upload_past_the_limit_in_flight_gets_429_with_retry_after_and_the_next_one_is_taken() {
    let app = spawn_app_with(|config| config.max_uploads = 1).await;
    // An upload whose body keeps coming until the sender is dropped holds the only permit.
    let (sender, chunks) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
    let body = Body::from_stream(futures_util::stream::unfold(chunks, |mut chunks| async move {
        chunks.recv().await.map(|chunk| (chunk, chunks))
    }));
    let held = tokio::spawn(app.send(Request::post("/api/ingest/observations").body(body).unwrap()));
    // Once the held upload's handler reads its body, the permit is taken.
    sender.send(Ok(bytes::Bytes::from_static(b"\n"))).await.unwrap();
    sender.send(Ok(bytes::Bytes::from_static(b"\n"))).await.unwrap();
    let refused = app.send(Request::post("/api/ingest/observations").body(Body::from("")).unwrap()).await;
    refused.assert_envelope(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests");
    assert_eq!(refused.headers["retry-after"], "1");
    drop(sender);
    assert_eq!(held.await.unwrap().status, StatusCode::OK);
    let taken = app.send(Request::post("/api/ingest/observations").body(Body::from("")).unwrap()).await;
    assert_eq!(taken.status, StatusCode::OK, "{}", taken.text);
}
