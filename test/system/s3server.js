// s3server.js: a real S3-protocol server for the tests (npm @20minutes/s3rver
// 4.0.4, which verifies AWS SigV4 signatures: a wrong secret gets 403
// SignatureDoesNotMatch). Installed by tools/install-deps into
// tools/npm/node_modules. Loopback only; prints one JSON line
// {"port": N} on stdout once listening; exits on SIGTERM, when stdin closes
// (the test that started it died) or after --max-seconds.
//
//   node s3server.js --directory DIR --bucket NAME [--port 0] [--max-seconds 600]
// Credentials: access key id S3RVER, secret S3RVER (s3rver's built-in account);
// S3SERVER_KEY_PAIR=ID:SECRET in the environment (never argv: `ps` shows it)
// adds a key pair, for tests that need a secret of their own.
'use strict';
const path = require('path');

const args = { port: '0', 'max-seconds': '600', bucket: 'drive2' };
for (let i = 2; i < process.argv.length; i += 2) {
  const name = process.argv[i].replace(/^--/, '');
  args[name] = process.argv[i + 1];
}
if (!args.directory) {
  process.stderr.write('s3server.js: --directory DIR is required\n');
  process.exit(2);
}
const modules = path.join(__dirname, '..', '..', 'tools', 'npm', 'node_modules');
let S3rver;
try {
  S3rver = require(path.join(modules, '@20minutes', 's3rver'));
} catch (e) {
  process.stderr.write(`s3server.js: @20minutes/s3rver is not installed (run tools/install-deps): ${e.message}\n`);
  process.exit(3);
}

if (process.env.S3SERVER_KEY_PAIR) {
  const pair = process.env.S3SERVER_KEY_PAIR;
  const colon = pair.indexOf(':');
  const account = require(path.join(modules, '@20minutes', 's3rver', 'lib', 'models', 'account'));
  account.DUMMY_ACCOUNT.createKeyPair(pair.slice(0, colon), pair.slice(colon + 1));
}

const server = new S3rver({
  address: '127.0.0.1',
  port: Number(args.port),
  directory: args.directory,
  silent: true,
  vhostBuckets: false,
  configureBuckets: [{ name: args.bucket }],
});

let closing = false;
function stop(code) {
  if (closing) return;
  closing = true;
  server.close().then(() => process.exit(code), () => process.exit(code));
  setTimeout(() => process.exit(code), 2000).unref();
}

server.run().then(
  (address) => {
    process.stdout.write(JSON.stringify({ port: address.port }) + '\n');
  },
  (err) => {
    process.stderr.write(`s3server.js: cannot start: ${err.message}\n`);
    process.exit(1);
  },
);
process.on('SIGTERM', () => stop(0));
process.on('SIGINT', () => stop(0));
process.stdin.on('end', () => stop(0));
process.stdin.on('error', () => stop(0));
process.stdin.resume();
setTimeout(() => stop(0), Number(args['max-seconds']) * 1000).unref();
