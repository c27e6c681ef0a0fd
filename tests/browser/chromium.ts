/**
 * Headless Chromium driven through the Chrome DevTools Protocol over Deno's WebSocket, for the
 * browser tests (`deno task test:browser`) and the browser bench (`bench/browser_gemm.ts`); no
 * library code imports it.
 *
 * @module
 */

/**
 * Flags that give headless Chromium a WebGPU adapter on a machine without a GPU: SwiftShader, a
 * software Vulkan implementation shipped with Chromium.
 */
export const WEBGPU_FLAGS: readonly string[] = [
  "--headless=new",
  "--no-sandbox",
  "--no-first-run",
  "--no-default-browser-check",
  "--disable-dev-shm-usage",
  "--enable-unsafe-webgpu",
  "--enable-features=Vulkan",
  "--use-angle=swiftshader",
  "--use-webgpu-adapter=swiftshader",
];

/** Bundles the module at `entry` (a file URL) for the browser into the file `out`. */
export async function bundleForBrowser(entry: URL, out: string): Promise<void> {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--quiet", "--platform", "browser", "-o", out, entry.pathname],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new Error(`deno bundle ${entry.pathname} failed:\n${new TextDecoder().decode(stderr)}`);
  }
}

/** Executables tried in order when `BRL_CHROMIUM` does not name one. */
const CANDIDATES = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"];

/** The Chromium executable (`BRL_CHROMIUM`, else the first candidate on `PATH`), or `null`. */
export async function findChromium(): Promise<string | null> {
  const given = Deno.env.get("BRL_CHROMIUM");
  const names = given ? [given] : CANDIDATES;
  for (const dir of given?.includes("/") ? [""] : (Deno.env.get("PATH") ?? "").split(":")) {
    for (const name of names) {
      const path = dir === "" ? name : `${dir}/${name}`;
      try {
        const info = await Deno.stat(path);
        if (info.isFile) return path;
      } catch {
        // not here
      }
    }
  }
  return null;
}

interface CdpMessage {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message: string };
  sessionId?: string;
}

/** A running headless Chromium with one page attached through the DevTools protocol. */
export class Chromium implements AsyncDisposable {
  #next = 1;
  #pending = new Map<
    number,
    { resolve(v: Record<string, unknown>): void; reject(e: Error): void }
  >();
  #listeners: ((message: CdpMessage) => void)[] = [];
  /** Console lines and uncaught errors of the page, in order. */
  readonly log: string[] = [];

  private constructor(
    private readonly process: Deno.ChildProcess,
    private readonly socket: WebSocket,
    private readonly profile: string,
    private session = "",
  ) {
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data) as CdpMessage;
      if (message.id !== undefined) {
        const waiter = this.#pending.get(message.id);
        this.#pending.delete(message.id);
        if (message.error) waiter?.reject(new Error(`CDP: ${message.error.message}`));
        else waiter?.resolve(message.result ?? {});
      } else {
        this.#onEvent(message);
        for (const listen of this.#listeners) listen(message);
      }
    };
  }

  /** Starts Chromium with `flags` and a fresh profile, and opens a blank page. */
  static async launch(
    executable: string,
    flags: readonly string[] = WEBGPU_FLAGS,
  ): Promise<Chromium> {
    const profile = await Deno.makeTempDir({ prefix: "brl-chromium-" });
    const process = new Deno.Command(executable, {
      args: [...flags, `--user-data-dir=${profile}`, "--remote-debugging-port=0", "about:blank"],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const url = await devToolsUrl(process.stderr);
    const socket = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      socket.onopen = () => resolve();
      socket.onerror = () => reject(new Error(`Cannot open the DevTools socket ${url}`));
    });
    const browser = new Chromium(process, socket, profile);
    const { targetInfos } = await browser.send("Target.getTargets") as {
      targetInfos: { targetId: string; type: string }[];
    };
    const page = targetInfos.find((t) => t.type === "page");
    if (!page) throw new Error("Chromium opened no page");
    const { sessionId } = await browser.send("Target.attachToTarget", {
      targetId: page.targetId,
      flatten: true,
    }) as { sessionId: string };
    browser.session = sessionId;
    await browser.send("Runtime.enable");
    await browser.send("Page.enable");
    return browser;
  }

  /** Sends one DevTools command to the page (or to the browser before a page is attached). */
  send(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const id = this.#next++;
    const message: CdpMessage = { id, method, params };
    if (this.session) message.sessionId = this.session;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.socket.send(JSON.stringify(message));
    });
  }

  /** Navigates the page to `url` and waits for its load event. */
  async goto(url: string): Promise<void> {
    const loaded = this.#waitFor("Page.loadEventFired");
    await this.send("Page.navigate", { url });
    await loaded;
  }

  /**
   * Evaluates `expression` in the page, awaiting a returned promise, and returns its value as
   * JSON. A thrown error rejects with its description (message and stack).
   */
  async evaluate<T = unknown>(expression: string): Promise<T> {
    const reply = await this.send("Runtime.evaluate", {
      expression,
      awaitPromise: true,
      returnByValue: true,
    }) as {
      result: { value?: T };
      exceptionDetails?: { exception?: { description?: string }; text: string };
    };
    if (reply.exceptionDetails) {
      const details = reply.exceptionDetails;
      throw new Error(`In the page: ${details.exception?.description ?? details.text}`);
    }
    return reply.result.value as T;
  }

  /** A PNG screenshot of the whole page (beyond the viewport). */
  async screenshot(): Promise<Uint8Array> {
    const { cssContentSize } = await this.send("Page.getLayoutMetrics") as {
      cssContentSize: { width: number; height: number };
    };
    const { data } = await this.send("Page.captureScreenshot", {
      format: "png",
      captureBeyondViewport: true,
      clip: { x: 0, y: 0, width: cssContentSize.width, height: cssContentSize.height, scale: 1 },
    }) as { data: string };
    return Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  }

  #waitFor(method: string): Promise<CdpMessage> {
    return new Promise((resolve) => {
      const listen = (message: CdpMessage) => {
        if (message.method !== method) return;
        this.#listeners = this.#listeners.filter((l) => l !== listen);
        resolve(message);
      };
      this.#listeners.push(listen);
    });
  }

  #onEvent(message: CdpMessage): void {
    if (message.method === "Runtime.consoleAPICalled") {
      const { type, args } = message.params as {
        type: string;
        args: { value?: unknown; description?: string }[];
      };
      this.log.push(`${type}: ${args.map((a) => a.value ?? a.description ?? "").join(" ")}`);
    } else if (message.method === "Runtime.exceptionThrown") {
      const { exceptionDetails } = message.params as {
        exceptionDetails: { text: string; exception?: { description?: string } };
      };
      this.log.push(
        `uncaught: ${exceptionDetails.exception?.description ?? exceptionDetails.text}`,
      );
    }
  }

  /** Closes the browser and removes its profile. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.socket.close();
    } catch {
      // already closed
    }
    try {
      this.process.kill("SIGKILL");
    } catch {
      // already exited
    }
    await this.process.status;
    await Deno.remove(this.profile, { recursive: true }).catch(() => {});
  }
}

/** Reads Chromium's stderr up to its "DevTools listening on ws://..." line. */
async function devToolsUrl(stderr: ReadableStream<Uint8Array>): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  const reader = stderr.getReader();
  const timeout = setTimeout(() => reader.cancel(), 30_000);
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      const match = text.match(/DevTools listening on (ws:\/\/\S+)/);
      if (match) {
        // Keep draining stderr so that Chromium never blocks on a full pipe.
        (async () => {
          try {
            while (!(await reader.read()).done) { /* discard */ }
          } catch { /* closed */ }
        })();
        return match[1];
      }
    }
  } finally {
    clearTimeout(timeout);
  }
  throw new Error(`Chromium exited before its DevTools endpoint was up:\n${text.slice(-2000)}`);
}
