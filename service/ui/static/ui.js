// Sortable tables: click a header of a table.sortable to sort by it (numbers by their data-sort value).
document.addEventListener("DOMContentLoaded", () => {
  for (const table of document.querySelectorAll("table.sortable")) {
    const headers = table.querySelectorAll("thead th");
    headers.forEach((th, column) => th.addEventListener("click", () => {
      const body = table.tBodies[0];
      const descending = th.getAttribute("aria-sort") === "ascending";
      headers.forEach((h) => h.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", descending ? "descending" : "ascending");
      const key = (row) => {
        const cell = row.cells[column];
        const raw = cell.dataset.sort ?? cell.textContent.trim();
        const n = Number(raw);
        return raw !== "" && !Number.isNaN(n) ? n : raw.toLowerCase();
      };
      const rows = Array.from(body.rows).sort((a, b) => {
        const x = key(a), y = key(b);
        return (x < y ? -1 : x > y ? 1 : 0) * (descending ? -1 : 1);
      });
      body.append(...rows);
    }));
  }
});

// Sections computed after the page (a candidate's impact simulation): fetched and put in place when ready.
document.addEventListener("DOMContentLoaded", async () => {
  for (const section of document.querySelectorAll("section[data-src]")) {
    try {
      const response = await fetch(section.dataset.src, { credentials: "same-origin" });
      const text = await response.text();
      if (response.ok) {
        section.outerHTML = text;
      } else {
        section.querySelector("p").textContent = `The simulation failed (HTTP ${response.status}); reload the page.`;
      }
    } catch (error) {
      section.querySelector("p").textContent = `The simulation could not be fetched (${error}); reload the page.`;
    }
  }
});
