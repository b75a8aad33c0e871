// A gRPC client in another language (Node.js, @grpc/grpc-js + @grpc/proto-loader), using only
// the .proto files: what a team outside Python would write against relman.v1. It runs a fixed
// script of calls and prints one JSON object with what it saw; the Python test judges it.
//
// Usage: node client.js RELEASE_ADDR DEPLOYER_ADDR TOKEN PROTO_DIR GOOGLEAPIS_DIR
"use strict";
const grpc = require("@grpc/grpc-js");
const loader = require("@grpc/proto-loader");

const [releaseAddr, deployerAddr, token, protoDir, googleDir] = process.argv.slice(2);
const options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
                  includeDirs: [protoDir, googleDir] };
const relman = grpc.loadPackageDefinition(loader.loadSync(
  ["relman/v1/release.proto", "relman/v1/deployer.proto"], options)).relman.v1;
// Decode grpc-status-details-bin into {code, message, details: [{type, ...}]}.
const protobuf = require("protobufjs");
const rpcTypes = new protobuf.Root().loadSync(
  [`${googleDir}/google/rpc/status.proto`, `${googleDir}/google/rpc/error_details.proto`],
  { keepCase: true });
function statusOf(err) {
  const raw = err.metadata && err.metadata.get("grpc-status-details-bin")[0];
  if (!raw) return null;
  const status = rpcTypes.lookupType("google.rpc.Status").decode(raw);
  const details = status.details.map((any) => {
    const name = any.type_url.split("/").pop();
    const type = rpcTypes.lookupType(name);
    return { type: name, ...type.toObject(type.decode(any.value)) };
  });
  return { code: status.code, message: status.message, details };
}

function call(client, method, request) {
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${token}`);
  return new Promise((resolve) => {
    client[method](request, md, { deadline: Date.now() + 10000 }, (err, resp) => {
      if (err) resolve({ ok: false, code: err.code, message: err.details, status: statusOf(err) });
      else resolve({ ok: true, resp });
    });
  });
}

function stream(client, method, request) {
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${token}`);
  return new Promise((resolve) => {
    const seen = [];
    const s = client[method](request, md);
    s.on("data", (update) => seen.push(update));
    s.on("error", (err) => resolve({ ok: false, code: err.code, message: err.details, seen }));
    s.on("end", () => resolve({ ok: true, seen }));
  });
}

(async () => {
  const creds = grpc.credentials.createInsecure();
  const release = new relman.ReleaseService(releaseAddr, creds);
  const deployer = new relman.DeployerService(deployerAddr, creds);
  const out = {};
  out.createApp = await call(release, "CreateApp", { name: "node-app" });
  out.missingApp = await call(release, "GetApp", { name: "nope" });
  out.badName = await call(release, "CreateApp", { name: "Not An App" });
  out.importBuild = await call(release, "ImportBuild", {
    app: "node-app", manifest: "services:\n  web:\n    build: .\n    port: https:443\n",
    images: { web: "registry.example/node-app:web.1" }, description: "from node" });
  out.malformedRelease = await call(release, "GetRelease", { app: "node-app", id: "R1" });
  out.unknownRelease = await call(release, "GetRelease", { app: "node-app", id: "RXXXXXXXXXX" });
  out.malformedDeployment = await call(deployer, "GetDeployment", { id: "D1" });
  out.unknownDeployment = await call(deployer, "GetDeployment", { id: "DXXXXXXXXXX" });
  out.promote = await stream(deployer, "Promote", { app: "node-app" });
  out.releases = await call(release, "ListReleases", { app: "node-app" });
  out.deployments = await call(deployer, "ListDeployments", { app: "node-app" });
  process.stdout.write(JSON.stringify(out));
  release.close();
  deployer.close();
})().catch((err) => { console.error(err); process.exit(1); });
