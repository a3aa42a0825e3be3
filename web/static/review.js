// The review queue's keyboard: a digit presses the label button with that number, any other
// letter follows the skip link. Nothing else on the page needs JavaScript.
document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (target instanceof HTMLInputElement || target instanceof HTMLSelectElement) return;
  if (/^[1-9]$/.test(event.key)) {
    const button = document.querySelector(`button[data-key="${event.key}"]`);
    if (button) {
      event.preventDefault();
      button.click();
    }
  } else if (/^[a-z]$/i.test(event.key)) {
    const skip = document.getElementById("skip");
    if (skip) {
      event.preventDefault();
      window.location.assign(skip.href);
    }
  }
});
