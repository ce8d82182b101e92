// Every page script starts with mountPage(): the shared page head and the partials its HTML asks for.
import { mountNewPasswordFields } from "./new-password.js";
import { mountPageHead } from "./page-head.js";

export function mountPage(options = {}) {
  mountPageHead(options);
  mountNewPasswordFields();
}
