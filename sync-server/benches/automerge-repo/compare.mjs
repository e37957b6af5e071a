// The same shops as Menqian's fixtures, through automerge-repo: one client
// creates a document per shop on the sync server, then a fresh client fetches
// them all. Usage: node compare.mjs <shops.json> <port> <data dir> <time limit s>
import fs from "node:fs"
import path from "node:path"
import { Repo } from "@automerge/automerge-repo"
import { BrowserWebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket"

const [file, port, dataDir, limitS] = process.argv.slice(2)
const shops = JSON.parse(fs.readFileSync(file, "utf8"))
const limitMs = Number(limitS) * 1000
const url = `ws://127.0.0.1:${port}`
const seconds = (ms) => (ms / 1000).toFixed(2)

// Documents the server has stored: DATA_DIR/<id[0:2]>/<id[2:]>/…, less the
// adapter's own "storage-adapter-id" key, stored the same way.
function storedOnServer() {
  let n = 0
  for (const a of fs.readdirSync(dataDir)) {
    const p = path.join(dataDir, a)
    if (!fs.statSync(p).isDirectory()) continue
    n += fs.readdirSync(p).filter((b) => a + b !== "storage-adapter-id").length
  }
  return n
}

const creator = new Repo({ network: [new BrowserWebSocketClientAdapter(url)], sharePolicy: async () => true })
let t = performance.now()
const urls = shops.map((shop) => {
  const handle = creator.create()
  handle.change((d) => Object.assign(d, shop))
  return handle.url
})
let stored = 0
while ((stored = storedOnServer()) < shops.length && performance.now() - t < limitMs) {
  await new Promise((r) => setTimeout(r, 250))
}
const createMs = performance.now() - t
console.log(`automerge-repo: created ${shops.length} documents, ${stored} stored on the server after ${seconds(createMs)} s`)
if (stored < shops.length) {
  console.log(`automerge-repo: creation did not finish within ${limitS} s`)
}

const fresh = new Repo({ network: [new BrowserWebSocketClientAdapter(url)], sharePolicy: async () => true })
t = performance.now()
let ready = 0
const all = Promise.all(
  urls.map(async (u) => {
    await fresh.find(u).whenReady()
    ready++
  }),
)
const outcome = await Promise.race([all.then(() => "done"), new Promise((r) => setTimeout(() => r("timeout"), limitMs))])
const fetchMs = performance.now() - t
if (outcome === "done") {
  console.log(`automerge-repo: a fresh client fetched ${shops.length} documents in ${seconds(fetchMs)} s`)
} else {
  console.log(`automerge-repo: a fresh client had ${ready} of ${shops.length} documents after ${seconds(fetchMs)} s (stopped)`)
}
process.exit(0)
