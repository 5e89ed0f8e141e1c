// The booking service's pages: the renter's (/) and the owner's (/owner). Bundled by esbuild with viem
// into edge/booking/static/app.js (`make web`); the page talks to the person's wallet through
// window.ethereum (EIP-1193) only and never sees a private key. Every contract call is first run by the
// service as an eth_call (/api/preflight), so that a refusal is shown as the sentence `parkgate lot`
// prints; then the wallet sends it (eth_sendTransaction).
import {
  createPublicClient,
  createWalletClient,
  custom,
  encodeFunctionData,
  formatEther,
  parseEther,
  parseEventLogs,
  toHex,
} from "viem";

const POLL_MS = 3000;
const RENTALS_EVERY = 10; // polls: the offers change rarely, a booking's state is what a renter waits for
const CANCEL_CUTOFF_S = 60 * 60; // ParkgateRental.CANCEL_CUTOFF: no cancelling from start - cutoff on
const STEPS = [
  ["requested", "requested"],
  ["verified", "verified at the gate"],
  ["checked_in", "checked in"],
  ["checked_out", "checked out"],
  ["settled", "settled"],
];
// The gate's entry record verifies the plate and checks the booking in at once (the second association).
const REACHED = { requested: 1, checked_in: 3, checked_out: 4, settled: 5 };

const $ = (selector) => document.querySelector(selector);

// ------------------------------------------------------------------------------------- plumbing

/** JSON with every "..._wei" number read exactly (a JavaScript number holds 53 bits, wei need 96). */
function parseJson(text) {
  return JSON.parse(text, (key, value, context) =>
    key.endsWith("_wei") && typeof value === "number"
      ? BigInt(context && context.source ? context.source : value)
      : value,
  );
}

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  };
  const response = await fetch(path, init);
  let answer = null;
  try {
    answer = parseJson(await response.text());
  } catch {
    answer = null;
  }
  if (!response.ok) {
    throw new Error(answer && answer.error ? answer.error : `the booking service answered ${response.status}`);
  }
  return answer;
}

function say(text, kind = "error") {
  const box = $("#message");
  box.textContent = text;
  box.className = kind;
  box.dataset.kind = kind;
}

function walletMessage(error) {
  if (error && error.code === 4001) return "you declined the request in your wallet";
  return (error && (error.shortMessage || error.message)) || String(error);
}

let acting = false; // an action is under way: polling does not redraw (and re-enable) its buttons

/** Run ``action`` with the page's buttons disabled; its error is shown as the page's message. */
async function busy(action) {
  if (acting) return;
  acting = true;
  const buttons = [...document.querySelectorAll("button")];
  buttons.forEach((b) => { b.disabled = true; });
  try {
    await action();
  } catch (error) {
    say(walletMessage(error));
  } finally {
    acting = false;
    document.querySelectorAll("button").forEach((b) => { b.disabled = false; });
  }
}

const utc = (ts) => new Date(Number(ts) * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC";
const toInput = (ts) => new Date(Number(ts) * 1000).toISOString().slice(0, 16);
const eth = (wei) => `${formatEther(BigInt(wei))} ETH`;

/** Unix seconds from a datetime-local input, read as UTC (the pages say so next to the field). */
function fromInput(input, what) {
  const value = input.value.trim();
  const seconds = Date.parse(value.length === 16 ? `${value}:00Z` : `${value}Z`) / 1000;
  if (!Number.isFinite(seconds)) throw new Error(`give the ${what} as a date and a time (UTC)`);
  return seconds;
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
  return td;
}

function button(label, className, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.className = className;
  b.addEventListener("click", () => busy(onClick));
  return b;
}

// ------------------------------------------------------------------------------------- wallet

class Wallet {
  constructor(lot, abi, account) {
    this.lot = lot;
    this.abi = abi;
    this.account = account;
    const transport = custom(window.ethereum);
    this.wallet = createWalletClient({ account, transport });
    this.chain = createPublicClient({ transport, pollingInterval: 500 });
  }

  static async connect(lot) {
    if (!window.ethereum) {
      throw new Error("no wallet found: this page needs a browser wallet (EIP-1193, window.ethereum)");
    }
    const [account] = await window.ethereum.request({ method: "eth_requestAccounts" });
    if (!account) throw new Error("the wallet gave no account: unlock it and connect again");
    const chainId = Number(await window.ethereum.request({ method: "eth_chainId" }));
    if (chainId !== lot.chain_id) {
      throw new Error(`the wallet is on chain ${chainId}; lot ${lot.lot} is on chain ${lot.chain_id}: ` +
        "switch the wallet's network");
    }
    const { abi } = await api("/api/abi");
    return new Wallet(lot, abi, account);
  }

  signMessage(message) {
    return this.wallet.signMessage({ account: this.account, message });
  }

  read(functionName, args) {
    return this.chain.readContract({ address: this.lot.contract, abi: this.abi, functionName, args });
  }

  /** Pre-flight through the service (a refusal in words), then send through the wallet; the events. */
  async transact(functionName, args, value = 0n) {
    const data = encodeFunctionData({ abi: this.abi, functionName, args });
    await api("/api/preflight", { from: this.account, data, value: toHex(value) });
    const hash = await this.wallet.sendTransaction({
      account: this.account, to: this.lot.contract, data, value, chain: null,
    });
    const receipt = await this.chain.waitForTransactionReceipt({ hash, timeout: 120_000 });
    if (receipt.status !== "success") throw new Error(`the transaction ${hash} was reverted`);
    return parseEventLogs({ abi: this.abi, logs: receipt.logs });
  }
}

function showAccount(wallet) {
  $("#account").textContent = wallet.account;
  $("#connect").hidden = true;
  document.body.dataset.connected = "true";
}

function poll(refresh) {
  refresh();
  setInterval(() => { if (!document.hidden && !acting) refresh(); }, POLL_MS);
}

// ------------------------------------------------------------------------------------- renter

function steps(status) {
  const list = document.createElement("ol");
  list.className = "steps";
  const reached = REACHED[status] || 0;
  STEPS.forEach(([key, label], i) => {
    const li = document.createElement("li");
    li.dataset.step = key;
    li.textContent = label;
    if (i < reached) li.className = "done";
    list.appendChild(li);
  });
  if (!REACHED[status]) {
    const li = document.createElement("li");
    li.dataset.step = status;
    li.className = "ended";
    li.textContent = status;
    list.appendChild(li);
  }
  return list;
}

class RenterPage {
  constructor(lot) {
    this.lot = lot;
    this.wallet = null;
    this.rentals = [];
    this.rentalsAsked = 0;  // refreshes of the rentals list asked so far: only the newest one's answer is shown
    this.serviceOffset = lot.service_time - Date.now() / 1000;
  }

  async showRentals() {
    const asked = ++this.rentalsAsked;
    const rentals = await api("/api/rentals");
    if (asked !== this.rentalsAsked) return;  // a later refresh is on its way: an older answer never wins
    this.rentals = rentals;
    const body = $("#rentals tbody");
    body.replaceChildren();
    const select = $("#rental");
    const chosen = select.value;
    select.replaceChildren();
    for (const r of this.rentals) {
      const row = document.createElement("tr");
      row.dataset.rentalId = r.rental_id;
      cell(row, String(r.rental_id));
      cell(row, `${r.space_id}: ${r.location}`);
      cell(row, `${utc(r.start)} – ${utc(r.end)}`);
      cell(row, eth(r.price_per_hour_wei));
      cell(row, "").appendChild(button("Choose", "choose", () => this.choose(r)));
      body.appendChild(row);
      const option = document.createElement("option");
      option.value = r.rental_id;
      option.textContent = `rental event ${r.rental_id} (space ${r.space_id}: ${r.location})`;
      select.appendChild(option);
    }
    keepChoice(select, chosen, `rental event ${chosen}`);
    $("#no-rentals").hidden = this.rentals.length > 0;
  }

  choose(rental) {
    $("#rental").value = rental.rental_id;
    const now = this.chainTime || Math.floor(Date.now() / 1000);
    const start = Math.max(rental.start, Math.ceil((now + 120) / 60) * 60);
    $("#start").value = toInput(start);
    $("#end").value = toInput(Math.min(start + 2 * 3600, rental.end));
    $("#plate").focus();
  }

  async book() {
    if (!this.wallet) throw new Error("connect your wallet first");
    const rental = Number($("#rental").value);
    if (!rental) throw new Error("choose a rental event first");
    const plate = $("#plate").value.trim();
    if (!plate) throw new Error("type your car's plate");
    const start = fromInput($("#start"), "start");
    const end = fromInput($("#end"), "end");
    const nonce = [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0"))
      .join("");
    const expires = Math.floor(Date.now() / 1000 + this.serviceOffset) + 300;
    const message = [this.lot.message_header, `lot: ${this.lot.lot}`, `contract: ${this.lot.contract}`,
      `chain id: ${this.lot.chain_id}`, `plate: ${plate}`, `rental: ${rental}`, `start: ${start}`,
      `end: ${end}`, `nonce: ${nonce}`, `expires: ${expires}`].join("\n");
    say("sign the commitment request in your wallet", "info");
    const signature = await this.wallet.signMessage(message);
    const answer = await api("/api/commitment", { account: this.wallet.account, message, signature });
    // The escrow as the contract computes it, read through the wallet: exact in any browser.
    const escrow = await this.wallet.read("quote", [BigInt(rental), BigInt(start), BigInt(end)]);
    say(`book in your wallet: ${eth(escrow)} held in escrow`, "info");
    const events = await this.wallet.transact("requestRental",
      [BigInt(rental), BigInt(start), BigInt(end), answer.commitment], escrow);
    const booked = events.find((e) => e.eventName === "RentalRequested");
    $("#plate").value = "";
    say(`booked: booking ${booked.args.bookingId}, ${utc(start)} – ${utc(end)}`, "ok");
    await this.refresh();
  }

  /** The bookings every poll, the offers every RENTALS_EVERY polls (and after each action): a page
   * stays well inside the service's per-address read limit (one a second, bursts of 60). */
  async refresh(offers = true) {
    try {
      if (offers) await this.showRentals();
      if (this.wallet) this.showBookings(await api(`/api/renters/${this.wallet.account}`));
    } catch (error) {
      say(walletMessage(error));
    }
  }

  showBookings(view) {
    this.chainTime = view.chain_time;
    const body = $("#bookings tbody");
    body.replaceChildren();
    for (const b of view.bookings) {
      const row = document.createElement("tr");
      row.dataset.bookingId = b.booking_id;
      row.dataset.status = b.status;
      cell(row, String(b.booking_id));
      cell(row, String(b.rental_id));
      cell(row, `${utc(b.start)} – ${utc(b.end)}`);
      cell(row, "").appendChild(steps(b.status));
      cell(row, eth(b.escrow_wei));
      const actions = cell(row, "");
      if (b.status === "requested" && view.chain_time + CANCEL_CUTOFF_S < b.start) {
        actions.appendChild(button("Cancel", "cancel", async () => {
          await this.wallet.transact("cancelBooking", [BigInt(b.booking_id)]);
          say(`booking ${b.booking_id} cancelled: its escrow is yours to withdraw`, "ok");
          await this.refresh();
        }));
      }
      body.appendChild(row);
    }
    $("#credit").textContent = eth(view.pending_wei);
    $("#withdraw").hidden = view.pending_wei === 0n;
  }

  start() {
    $("#connect").addEventListener("click", () => busy(async () => {
      this.wallet = await Wallet.connect(this.lot);
      showAccount(this.wallet);
      say("wallet connected", "ok");
      await this.refresh();
    }));
    $("#book").addEventListener("submit", (event) => {
      event.preventDefault();
      busy(() => this.book());
    });
    $("#withdraw").addEventListener("click", () => busy(() => withdraw(this.wallet, () => this.refresh())));
    let polls = 0;
    poll(() => this.refresh(polls++ % RENTALS_EVERY === 0));
  }
}

async function withdraw(wallet, refresh) {
  const events = await wallet.transact("withdraw", []);
  const paid = events.find((e) => e.eventName === "Withdrawal");
  say(`withdrawn: ${eth(paid.args.amount)} sent to ${wallet.account}`, "ok");
  await refresh();
}

/** Select ``chosen`` again after ``select``'s options were rebuilt. A choice missing from them (an answer
 * read before it was offered, or one cancelled since) is kept as an option of its own: falling back to the
 * first option would book or offer another rental or space than the person chose, unnoticed; the contract
 * refuses a cancelled one in words. */
function keepChoice(select, chosen, label) {
  if (!chosen) return;
  if (![...select.options].some((option) => option.value === chosen)) {
    const option = document.createElement("option");
    option.value = chosen;
    option.textContent = label;
    select.appendChild(option);
  }
  select.value = chosen;
}

// ------------------------------------------------------------------------------------- owner

class OwnerPage {
  constructor(lot) {
    this.lot = lot;
    this.wallet = null;
    this.chainTime = null;
    this.asked = 0;  // refreshes asked so far: only the newest one's answer is shown
  }

  async refresh() {
    if (!this.wallet) return;
    const asked = ++this.asked;
    try {
      const view = await api(`/api/owners/${this.wallet.account}`);
      if (asked === this.asked) this.show(view);  // a later refresh is on its way: an older answer never wins
    } catch (error) {
      say(walletMessage(error));
    }
  }

  show(view) {
    const first = this.chainTime === null;
    this.chainTime = view.chain_time;
    $("#unverified").hidden = view.verified;
    $("#owner-forms").hidden = !view.verified;
    const select = $("#space");
    const chosen = select.value;
    select.replaceChildren();
    const spaces = $("#spaces tbody");
    spaces.replaceChildren();
    for (const s of view.spaces) {
      if (s.approved) {  // only a space the lot approved can be listed
        const option = document.createElement("option");
        option.value = s.space_id;
        option.textContent = `space ${s.space_id}: ${s.location}`;
        select.appendChild(option);
      }
      const row = document.createElement("tr");
      row.dataset.spaceId = s.space_id;
      row.dataset.approved = s.approved;
      cell(row, String(s.space_id));
      cell(row, s.location);
      cell(row, s.approved ? "approved" : "awaiting the lot's approval");
      spaces.appendChild(row);
    }
    keepChoice(select, chosen, `space ${chosen}`);
    if (first && !$("#start").value) {
      const start = Math.ceil((view.chain_time + 300) / 60) * 60;
      $("#start").value = toInput(start);
      $("#end").value = toInput(start + 8 * 3600);
    }
    this.showRentals(view.rentals);
    this.showBookings(view.bookings);
    $("#earned").textContent = eth(view.earned_wei);
    $("#pending").textContent = eth(view.pending_wei);
    $("#withdraw").hidden = view.pending_wei === 0n;
  }

  showRentals(rentals) {
    const body = $("#my-rentals tbody");
    body.replaceChildren();
    for (const r of rentals) {
      const row = document.createElement("tr");
      row.dataset.rentalId = r.rental_id;
      row.dataset.cancelled = r.cancelled;
      cell(row, String(r.rental_id));
      cell(row, String(r.space_id));
      cell(row, `${utc(r.start)} – ${utc(r.end)}`);
      cell(row, eth(r.price_per_hour_wei));
      const actions = cell(row, r.cancelled ? "cancelled" : "");
      if (!r.cancelled && r.end > this.chainTime) {
        actions.appendChild(button("Cancel", "cancel", async () => {
          await this.wallet.transact("cancelRentalEvent", [BigInt(r.rental_id)]);
          say(`rental event ${r.rental_id} cancelled; its bookings are refunded`, "ok");
          await this.refresh();
        }));
      }
      body.appendChild(row);
    }
  }

  showBookings(bookings) {
    const body = $("#my-bookings tbody");
    body.replaceChildren();
    for (const b of bookings) {
      const row = document.createElement("tr");
      row.dataset.bookingId = b.booking_id;
      row.dataset.status = b.status;
      cell(row, String(b.booking_id));
      cell(row, String(b.rental_id));
      cell(row, `${utc(b.start)} – ${utc(b.end)}`);
      cell(row, b.status.replace("_", " "));
      cell(row, eth(b.escrow_wei));
      const actions = cell(row, "");
      if (b.status === "checked_out") {
        actions.appendChild(button("Settle", "settle", async () => {
          const events = await this.wallet.transact("settle", [[BigInt(b.booking_id)]]);
          const settled = events.find((e) => e.eventName === "Settled");
          say(`booking ${b.booking_id} settled: ${eth(settled ? settled.args.toOwner : 0n)} to you`, "ok");
          await this.refresh();
        }));
      }
      body.appendChild(row);
    }
  }

  async addSpace() {
    const location = $("#location").value.trim();
    if (!location) throw new Error("give the space's location in the lot, e.g. L-1/B17");
    const events = await this.wallet.transact("registerSpace", [this.lot.lot_id, location]);
    const space = events.find((e) => e.eventName === "SpaceRegistered");
    say(`space ${space.args.spaceId} registered at ${location}: the lot approves it before you can offer it`,
      "ok");
    $("#location").value = "";
    await this.refresh();
  }

  async addRental() {
    const space = Number($("#space").value);
    if (!space) throw new Error("register a space first; you can offer it once the lot has approved it");
    const start = fromInput($("#start"), "start");
    const end = fromInput($("#end"), "end");
    let price;
    try {
      price = parseEther($("#price").value.trim());
    } catch {
      throw new Error("give the price per hour in ETH, e.g. 0.001");
    }
    const events = await this.wallet.transact("createRentalEvent",
      [BigInt(space), BigInt(start), BigInt(end), price]);
    const rental = events.find((e) => e.eventName === "RentalEventCreated");
    say(`rental event ${rental.args.rentalId} offered: ${utc(start)} – ${utc(end)}, ${eth(price)} per hour`,
      "ok");
    await this.refresh();
  }

  start() {
    $("#connect").addEventListener("click", () => busy(async () => {
      this.wallet = await Wallet.connect(this.lot);
      showAccount(this.wallet);
      say("wallet connected", "ok");
      await this.refresh();
    }));
    for (const [form, action] of [["#add-space", () => this.addSpace()], ["#add-rental", () => this.addRental()]]) {
      $(form).addEventListener("submit", (event) => {
        event.preventDefault();
        busy(action);
      });
    }
    $("#withdraw").addEventListener("click", () => busy(() => withdraw(this.wallet, () => this.refresh())));
    poll(() => this.refresh());
  }
}

// ------------------------------------------------------------------------------------- start

async function main() {
  const lot = await api("/api/lot");
  document.querySelectorAll(".lot-name").forEach((e) => { e.textContent = lot.lot; });
  const Page = document.body.dataset.page === "owner" ? OwnerPage : RenterPage;
  new Page(lot).start();
  document.body.dataset.ready = "true";
}

main().catch((error) => say(`the page could not start: ${walletMessage(error)}`));
