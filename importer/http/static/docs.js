"use strict";
// /docs: Swagger UI from the files vendored beside this one (static/swagger-ui/), reading this host's document.
// No validator badge: it would call validator.swagger.io, and production hosts are offline.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "openapi.json",
    dom_id: "#swagger-ui",
    validatorUrl: null,
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
