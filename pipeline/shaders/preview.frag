#version 330 core
// Preview shading: the diffuse term of pyrender's metallic-roughness shader (Lambert / pi),
// from its directional lights plus ambient, without the specular BRDF. On Mesa's CPU
// rasterizer pyrender's full shader was three quarters of a preview's cost; the figurines
// are matte (metallic 0, roughness 0.7), so the highlight it drew was faint.

struct DirectionalLight {
    vec3 color;
    float intensity;
    vec3 direction;
};

struct Material {
    vec4 base_color_factor;
#ifdef HAS_BASE_COLOR_TEX
    sampler2D base_color_texture;
#endif
};

uniform Material material;
uniform DirectionalLight directional_lights[MAX_DIRECTIONAL_LIGHTS];
uniform int n_directional_lights;
uniform vec3 ambient_light;

in vec3 frag_position;
#ifdef NORMAL_LOC
in vec3 frag_normal;
#endif
#ifdef TEXCOORD_0_LOC
in vec2 uv_0;
#endif
#ifdef COLOR_0_LOC
in vec4 color_multiplier;
#endif

out vec4 frag_color;

const float PI = 3.141592653589793;
const float DIELECTRIC_F0 = 0.04;  // what pyrender's shader takes off the diffuse colour

void main()
{
    vec4 base = material.base_color_factor;
#ifdef HAS_BASE_COLOR_TEX
    vec4 texel = texture(material.base_color_texture, uv_0);
    base *= vec4(pow(texel.rgb, vec3(2.2)), texel.a);  // sRGB texture, linear maths
#endif
#ifdef COLOR_0_LOC
    base *= color_multiplier;
#endif
#ifdef NORMAL_LOC
    vec3 n = normalize(frag_normal);
#else
    vec3 n = normalize(cross(dFdx(frag_position), dFdy(frag_position)));
#endif
    vec3 diffuse = vec3(0.0);
    for (int i = 0; i < n_directional_lights; i++) {
        float nl = max(dot(n, -directional_lights[i].direction), 0.0);
        diffuse += nl * directional_lights[i].intensity * directional_lights[i].color;
    }
    vec3 colour = base.rgb * ((1.0 - DIELECTRIC_F0) * diffuse / PI + ambient_light);
    frag_color = clamp(vec4(pow(colour, vec3(1.0 / 2.2)), base.a), 0.0, 1.0);
}
