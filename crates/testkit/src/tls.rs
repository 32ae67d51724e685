//! A throw-away certificate authority for tests, made with the `openssl`
//! command: a CA, and a server certificate it signs for loopback
//! (`127.0.0.1`, `localhost`), valid for two days.

use std::path::PathBuf;

use crate::run;

/// A CA and one server certificate, in a temporary directory.
pub struct TestCa {
    /// The CA certificate (PEM): what a client must trust.
    pub ca_pem: PathBuf,
    /// The server certificate (PEM), signed by the CA.
    pub cert_pem: PathBuf,
    /// The server's private key (PEM).
    pub key_pem: PathBuf,
    /// Where the files are.
    pub dir: tempfile::TempDir,
}

impl TestCa {
    /// A new CA named `name`, with a server certificate for loopback.
    pub fn new(name: &str) -> TestCa {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str| dir.path().join(name);
        let (ca_pem, ca_key) = (file("ca.pem"), file("ca.key"));
        let (cert_pem, key_pem, csr) = (file("server.pem"), file("server.key"), file("server.csr"));
        let extensions = file("server.ext");
        std::fs::write(
            &extensions,
            "subjectAltName = IP:127.0.0.1, DNS:localhost\n\
             basicConstraints = critical, CA:FALSE\n\
             keyUsage = critical, digitalSignature\n\
             extendedKeyUsage = serverAuth\n",
        )
        .unwrap();
        let path = |p: &PathBuf| p.to_str().unwrap().to_owned();
        let subject = format!("/CN={name}");
        #[rustfmt::skip]
        run("openssl", &[
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", &path(&ca_key), "-out", &path(&ca_pem), "-days", "2",
            "-subj", &subject,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        #[rustfmt::skip]
        run("openssl", &[
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", &path(&key_pem), "-out", &path(&csr),
            "-subj", "/CN=127.0.0.1",
        ]);
        #[rustfmt::skip]
        run("openssl", &[
            "x509", "-req", "-in", &path(&csr), "-CA", &path(&ca_pem), "-CAkey", &path(&ca_key),
            "-CAcreateserial", "-out", &path(&cert_pem), "-days", "2",
            "-extfile", &path(&extensions),
        ]);
        TestCa {
            ca_pem,
            cert_pem,
            key_pem,
            dir,
        }
    }
}
