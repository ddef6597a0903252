// Small DOM helpers shared by the views: element lookup and creation, the status message, and
// running an action with its button disabled and its error shown.

export const $ = (id) => document.getElementById(id);
export const num = (id) => Number($(id).value);
/** An optional integer field: undefined when empty (the API then picks). */
export const optionalInt = (id) => ($(id).value === "" ? undefined : parseInt($(id).value, 10));

/** Element helper: el("div", {className: "x", testid: "y"}, child, "text"). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "testid") node.dataset.testid = value;
    else node[key] = value;
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

/** Replace a <select>'s options. */
export function options(select, values, labels = values) {
  select.replaceChildren(...values.map((v, i) => el("option", { value: v, textContent: labels[i] })));
}

/** The status line under the navigation (role=status: screen readers announce it). */
export function say(text, error = false) {
  $("message").textContent = text;
  $("message").className = error ? "error" : "";
}

/** Run an action for a form or button: the button disabled meanwhile, any error shown. */
export async function busy(button, action) {
  button.disabled = true;
  say("");
  try {
    await action();
  } catch (err) {
    say(err instanceof Error ? err.message : String(err), true);
  } finally {
    button.disabled = false;
  }
}

/** `action` on the form's submit (no page reload), through `busy`. */
export function onSubmit(formId, action) {
  const form = $(formId);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(form.querySelector("button[type=submit]"), action);
  });
}
