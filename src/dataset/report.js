// The record browser of report.html: filters, paging and the detail view. The list rows are
// HTML written by apigen-mt; each record's JSON sits in <script type="application/json"
// id="d<i>"> and is parsed only when the record is opened or searched. Record text is only ever
// set as text (never as HTML), whatever a model wrote.
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var tbody = document.querySelector("#records tbody");
  if (!tbody) return;
  var rows = Array.prototype.slice.call(tbody.rows);
  var shared = JSON.parse($("shared").textContent);
  var byId = {};
  rows.forEach(function (row, i) { byId[row.cells[0].textContent] = i; });
  var state = { page: 0, matches: rows.map(function (_, i) { return i; }) };
  var searchText = [];

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "cls") node.className = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) {
      if (c == null) return;
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }
  function json(v) { return JSON.stringify(v, null, 2); }
  function pre(v) { return el("pre", { text: typeof v === "string" ? v : json(v) }); }
  function fold(summary, body, open) {
    var d = el("details", null, [el("summary", { text: summary }), body]);
    if (open) d.open = true;
    return d;
  }
  function kv(pairs) {
    var dl = el("dl", { cls: "kv" });
    pairs.forEach(function (p) {
      if (p[1] === undefined || p[1] === null || p[1] === "") return;
      dl.appendChild(el("dt", { text: p[0] }));
      dl.appendChild(el("dd", null, [typeof p[1] === "object" && p[1].nodeType ? p[1] : String(p[1])]));
    });
    return dl;
  }
  function table(header, body) {
    return el("table", { cls: "small" }, [
      el("thead", null, [el("tr", null, header.map(function (h) { return el("th", { text: h }); }))]),
      el("tbody", null, body.map(function (r) {
        return el("tr", null, r.map(function (c) {
          return el("td", null, [c && c.nodeType ? c : (c === undefined || c === null ? "" : String(c))]);
        }));
      }))
    ]);
  }
  function short(v, n) {
    var s = typeof v === "string" ? v : JSON.stringify(v);
    return s.length > n ? s.slice(0, n) + "…" : s;
  }

  // --- filters and paging -------------------------------------------------------------------
  function pageSize() { return parseInt($("f-page").value, 10) || rows.length || 1; }
  function haystack(i) {
    if (searchText[i] === undefined) {
      searchText[i] = (rows[i].textContent + "\n" + $("d" + i).textContent).toLowerCase();
    }
    return searchText[i];
  }
  function filter() {
    var outcome = $("f-outcome").value, reason = $("f-reason").value, tool = $("f-tool").value,
        user = $("f-user").value, text = $("f-search").value.trim().toLowerCase();
    state.matches = [];
    rows.forEach(function (row, i) {
      var d = row.dataset;
      if (outcome && d.outcome !== outcome) return;
      if (reason && d.reason !== reason) return;
      if (tool && d.tools.indexOf("|" + tool + "|") < 0) return;
      if (user && d.user !== user) return;
      if (text && haystack(i).indexOf(text) < 0) return;
      state.matches.push(i);
    });
    state.page = 0;
    show();
  }
  function show() {
    var size = pageSize(), pages = Math.max(1, Math.ceil(state.matches.length / size));
    state.page = Math.min(state.page, pages - 1);
    var from = state.page * size, to = Math.min(state.matches.length, from + size);
    var visible = {};
    for (var k = from; k < to; k++) visible[state.matches[k]] = true;
    rows.forEach(function (row, i) { row.hidden = !visible[i]; });
    $("shown").textContent = state.matches.length === rows.length
      ? "Showing " + (to > from ? (from + 1) + "–" + to : "0") + " of " + rows.length + " records."
      : "Showing " + (to > from ? (from + 1) + "–" + to : "0") + " of " + state.matches.length + " matching records (" + rows.length + " in all).";
    var pager = $("pager");
    pager.textContent = "";
    if (pages > 1) {
      var prev = el("button", { type: "button", id: "prev", text: "‹ previous" });
      var next = el("button", { type: "button", id: "next", text: "next ›" });
      prev.disabled = state.page === 0;
      next.disabled = state.page >= pages - 1;
      prev.onclick = function () { state.page--; show(); };
      next.onclick = function () { state.page++; show(); };
      pager.appendChild(prev);
      pager.appendChild(next);
      pager.appendChild(el("span", { text: "page " + (state.page + 1) + " of " + pages }));
    }
  }
  ["f-outcome", "f-reason", "f-tool", "f-user", "f-page"].forEach(function (id) {
    $(id).addEventListener("change", filter);
  });
  var typing;
  $("f-search").addEventListener("input", function () {
    clearTimeout(typing);
    typing = setTimeout(filter, 200);
  });

  // --- the detail view ----------------------------------------------------------------------
  function content(m) {
    return m.shared_content != null ? shared[m.shared_content] : (m.content || "");
  }
  function chat(messages) {
    var box = el("div", { cls: "chat" });
    var names = {};
    (messages || []).forEach(function (m) {
      (m.tool_calls || []).forEach(function (c) { names[c.id] = c.name || (c["function"] || {}).name; });
    });
    (messages || []).forEach(function (m) {
      var text = content(m);
      var node = el("div", { cls: "msg " + m.role }, [el("span", { cls: "who", text: m.role })]);
      if (m.role === "system") {
        node.appendChild(fold("system prompt (" + text.length + " characters)", pre(text)));
      } else if (m.role === "tool") {
        var name = m.name || names[m.tool_call_id] || "tool";
        node.appendChild(fold("result of " + name + ": " + short(text, 90), pre(text)));
      } else if (text) {
        node.appendChild(document.createTextNode(text));
      }
      (m.tool_calls || []).forEach(function (c) {
        var name = c.name || (c["function"] || {}).name;
        var args = c.arguments !== undefined ? c.arguments : (c["function"] || {}).arguments;
        node.appendChild(fold("call " + name + "(" + short(args, 80) + ")", pre(args)));
      });
      box.appendChild(node);
    });
    return box;
  }
  function diff(ops) {
    return table(["op", "path", "expected", "got"], ops.map(function (op) {
      return [op.op, op.path, op.old === undefined ? "" : short(op.old, 200), op.value === undefined ? "" : short(op.value, 200)];
    }));
  }
  function judgeScores(turns) {
    var body = [];
    (turns || []).forEach(function (t, n) {
      (t.candidates || []).forEach(function (c, k) {
        var score = t.scores && t.scores[k] != null ? t.scores[k] : "–";
        body.push([n + 1, (k === t.chosen ? "✓ " : "") + (k + 1), score, short(c, 160)]);
      });
    });
    return table(["user turn", "candidate", "judge score", "text"], body);
  }
  function trajectory(box, r) {
    box.appendChild(kv([["blueprint", r.blueprint_id || r.blueprint], ["attempt", r.attempt], ["seed", r.seed],
      ["ended by", r.end], ["verified", r.verified], ["reason", r.reason], ["agent steps", r.agent_steps],
      ["tool calls", r.tool_calls], ["parse errors", r.parse_errors]]));
    box.appendChild(el("h4", { text: "Task" }));
    box.appendChild(el("p", { text: r.instruction || "" }));
    if (r.diff && r.diff.length) {
      box.appendChild(el("h4", { cls: "bad", text: "State diff: the final database against the expected one" }));
      box.appendChild(diff(r.diff));
    }
    if (r.missing_outputs && r.missing_outputs.length) {
      box.appendChild(el("h4", { cls: "bad", text: "Missing outputs" }));
      box.appendChild(el("ul", null, r.missing_outputs.map(function (o) { return el("li", { text: o }); })));
    }
    box.appendChild(el("h4", { text: "Conversation" }));
    box.appendChild(chat(r.messages));
    if (r.user_turns && r.user_turns.some(function (t) { return (t.candidates || []).length > 1; })) {
      box.appendChild(el("h4", { text: "Simulated user: candidates and judge scores" }));
      box.appendChild(judgeScores(r.user_turns));
    }
    if (r.tokens) box.appendChild(fold("tokens per role", pre(r.tokens)));
    if (r.final_hash) box.appendChild(fold("state hashes", pre({ final: r.final_hash, expected: r.expected_hash })));
  }
  function blueprintBody(box, b, draft) {
    box.appendChild(el("h4", { text: "Instruction" }));
    box.appendChild(el("p", { text: draft.instruction || "(no readable draft)" }));
    if (draft.actions) {
      box.appendChild(el("h4", { text: "Actions" }));
      box.appendChild(el("ol", null, draft.actions.map(function (a) {
        return el("li", null, [fold(a.name + "(" + short(a.kwargs || {}, 90) + ")", pre(a.kwargs || {}))]);
      })));
    }
    if (draft.outputs && draft.outputs.length) {
      box.appendChild(el("h4", { text: "Outputs" }));
      box.appendChild(el("ul", null, draft.outputs.map(function (o) { return el("li", { text: String(o) }); })));
    }
    if (draft.thought) box.appendChild(fold("the generator's thought", pre(draft.thought)));
  }
  function blueprint(box, b, rejected) {
    box.appendChild(kv([["user", b.user_id], ["persona", b.persona], ["revision rounds", b.rounds], ["stage", b.stage],
      ["recombined from", (b.recombined_from || []).join(", ")], ["data seed", b.data_seed], ["tokens", b.tokens]]));
    if (rejected) {
      box.appendChild(el("h4", { cls: "bad", text: "Rejected at " + b.stage }));
      box.appendChild(pre(b.reason || ""));
      if (b.violations && b.violations.length) box.appendChild(kv([["policy rules broken", b.violations.join(", ")]]));
    }
    blueprintBody(box, b, rejected ? (b.draft || {}) : b);
    var votes = b.votes;
    if (votes && votes.reviews) {
      box.appendChild(el("h4", { text: "Committee" }));
      box.appendChild(table(["reviewer", "correctness", "completeness", "satisfaction", "creativity", "reflection", "correction"],
        votes.reviews.map(function (r, k) {
          return [k + 1, r.correctness, r.completeness, r.satisfaction, r.creativity, r.reflection, r.correction];
        })));
      box.appendChild(kv([["majority per criterion", (votes.voted || []).join(" ")], ["mean", votes.mean]]));
    }
    if (b.feedback && b.feedback.length) {
      box.appendChild(el("h4", { text: "Feedback, round by round" }));
      box.appendChild(table(["round", "failed at", "reason", "feedback to the generator"], b.feedback.map(function (f) {
        return [f.round, f.stage, short(f.reason || "", 400), f.feedback];
      })));
    } else if (b.rounds === 0) {
      box.appendChild(el("p", { cls: "dim", text: "The first draft passed every stage: no feedback rounds." }));
    }
    if (b.diff && b.diff.length) box.appendChild(fold("what the actions change (" + b.diff.length + " operations)", diff(b.diff)));
  }
  function evalTrial(box, r) {
    box.appendChild(kv([["task", r.task_id], ["trial", r.trial], ["reward", r.reward], ["reason", r.reason]]));
    box.appendChild(el("h4", { text: "Conversation" }));
    box.appendChild(chat(r.messages));
  }
  function open(i) {
    var data = JSON.parse($("d" + i).textContent), meta = data[0], body = data[1];
    var box = $("detail");
    box.textContent = "";
    box.hidden = false;
    box.appendChild(el("h3", { text: meta.id }));
    box.appendChild(el("p", { cls: "dim", text: meta.outcome + " " + meta.kind + (meta.reason ? " · " + meta.reason : "") + " · " + meta.file + " line " + meta.line }));
    if (meta.kind === "trajectory") trajectory(box, body);
    else if (meta.kind === "blueprint") blueprint(box, body, meta.outcome === "rejected");
    else if (meta.kind === "eval") evalTrial(box, body);
    box.appendChild(fold("the record as stored", pre(body)));
    rows.forEach(function (row) { row.classList.remove("open"); });
    rows[i].classList.add("open");
  }
  function fromHash() {
    var id = decodeURIComponent(location.hash.slice(1));
    if (byId[id] === undefined) return;
    var i = byId[id], k = state.matches.indexOf(i);
    if (k >= 0) { state.page = Math.floor(k / pageSize()); show(); }
    open(i);
    $("detail").scrollIntoView();
  }
  tbody.addEventListener("click", function (e) {
    var row = e.target.closest("tr");
    if (!row || e.target.tagName === "A") return;
    location.hash = encodeURIComponent(row.cells[0].textContent);
  });
  window.addEventListener("hashchange", fromHash);
  show();
  if (location.hash) fromHash();
})();
